//! Kafka client settings shared by every producer and consumer: the bootstrap servers,
//! then every `AGORA_KAFKA_<PROPERTY>` environment variable as the librdkafka property
//! `<property>` (lower case, `_` → `.`): `AGORA_KAFKA_SECURITY_PROTOCOL=SASL_SSL`,
//! `AGORA_KAFKA_SASL_MECHANISM=SCRAM-SHA-512`, `AGORA_KAFKA_SASL_USERNAME=…`,
//! `AGORA_KAFKA_SSL_CA_LOCATION=/etc/agora/kafka-ca.pem`, …

use rdkafka::ClientConfig;

/// The environment prefix of librdkafka properties.
pub const PROPERTY_PREFIX: &str = "AGORA_KAFKA_";

/// A client configuration for `brokers` with the `AGORA_KAFKA_*` properties applied.
/// Callers set their own properties after it (theirs are what the code relies on).
pub fn client_config(brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    for (property, value) in properties(std::env::vars()) {
        config.set(property, value);
    }
    config
}

/// The librdkafka properties among `variables`.
pub fn properties(variables: impl IntoIterator<Item = (String, String)>) -> Vec<(String, String)> {
    let mut properties: Vec<(String, String)> = variables
        .into_iter()
        .filter_map(|(name, value)| {
            let property = name.strip_prefix(PROPERTY_PREFIX)?;
            (!property.is_empty()).then(|| (property.to_lowercase().replace('_', "."), value))
        })
        .collect();
    properties.sort();
    properties
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agora_kafka_variables_become_librdkafka_properties() {
        let variables = [
            ("AGORA_KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
            ("AGORA_KAFKA_SASL_MECHANISM", "PLAIN"),
            ("AGORA_KAFKA_SSL_CA_LOCATION", "/ca.pem"),
            ("AGORA_KAFKA_", "ignored"),
            ("KAFKA_BROKERS", "ignored too"),
        ]
        .map(|(name, value)| (name.to_owned(), value.to_owned()));
        assert_eq!(
            properties(variables),
            [
                ("sasl.mechanism", "PLAIN"),
                ("security.protocol", "SASL_SSL"),
                ("ssl.ca.location", "/ca.pem"),
            ]
            .map(|(p, v)| (p.to_owned(), v.to_owned()))
        );
    }
}
