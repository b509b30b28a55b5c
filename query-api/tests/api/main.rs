//! The query API over real HTTP, on a real PostgreSQL: each test spawns the app on port 0
//! over a fresh database and fills the read-model tables directly (as the projector would).

mod audit;
mod auth;
mod consistency;
mod dashboard;
mod graphql;
mod health;
mod live;
mod openapi;
mod orders;
mod parked;
mod products;
mod support;
