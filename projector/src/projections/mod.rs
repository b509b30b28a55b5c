//! The shop's projections: products, orders (summary and detail, with payments and
//! refunds), sales per hour/day bucket, top products, and customers.

pub mod customers;
#[cfg(test)]
pub(crate) mod histories;
pub mod orders;
pub mod products;
pub mod sales;
pub mod top_products;

use std::sync::Arc;

use crate::projection::Projection;

/// Every projection the projector maintains.
pub fn all() -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(products::Products),
        Arc::new(orders::Orders),
        Arc::new(sales::Sales),
        Arc::new(top_products::TopProducts),
        Arc::new(customers::Customers),
    ]
}

/// The projection called `name`.
pub fn by_name(name: &str) -> Option<Arc<dyn Projection>> {
    all().into_iter().find(|p| p.name() == name)
}
