//! The service table (`envoy-ext/services.toml`): one row per service behind
//! the gateway. Everything that used to repeat a service's name, port or
//! limits (gateway objects, local Backends, the stack's instances, the
//! tests' expected limits) reads it from here.

use serde::Deserialize;

/// The committed table, compiled in so every consumer sees the same rows.
pub const SERVICES_TOML: &str = include_str!("../services.toml");

/// The whole table.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ServiceTable {
    pub gateway: Gateway,
    pub local: Local,
    #[serde(rename = "service")]
    pub services: Vec<Service>,
}

/// The Gateway every service is behind.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Gateway {
    pub namespace: String,
    pub name: String,
    pub port: u16,
    pub default_limit_per_minute: u32,
}

/// Settings of the standalone (no cluster) stack.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Local {
    pub replica_port_step: u16,
}

/// One service behind the gateway.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub name: String,
    pub package: String,
    pub grpc_service: String,
    pub env_prefix: String,
    pub port: u16,
    pub rest_collection: String,
    pub limit_per_minute: u32,
    pub user_limit_per_minute: u32,
}

/// One process of the standalone stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance<'a> {
    pub name: String,
    pub service: &'a Service,
    pub port: u16,
}

/// Why a table cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("services.toml does not parse: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("services.toml: {0}")]
    Invalid(String),
}

impl ServiceTable {
    /// The committed table.
    pub fn committed() -> Result<Self, TableError> {
        Self::parse(SERVICES_TOML)
    }

    /// Parses and checks a table: names, ports and collections are unique,
    /// and the ports of every instance a stack may run do not collide.
    pub fn parse(text: &str) -> Result<Self, TableError> {
        let table: Self = toml::from_str(text)?;
        table.check()?;
        Ok(table)
    }

    fn check(&self) -> Result<(), TableError> {
        if self.services.is_empty() {
            return Err(TableError::Invalid("no [[service]] rows".into()));
        }
        let mut seen = std::collections::HashSet::new();
        for service in &self.services {
            for key in [
                format!("name {}", service.name),
                format!("collection {}", service.rest_collection),
                format!("grpc {}", service.grpc_path_prefix()),
            ] {
                if !seen.insert(key.clone()) {
                    return Err(TableError::Invalid(format!("duplicate {key}")));
                }
            }
            if service.env_prefix.is_empty()
                || !service
                    .env_prefix
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err(TableError::Invalid(format!(
                    "{}: env_prefix {:?} is not an environment name",
                    service.name, service.env_prefix
                )));
            }
            if service.limit_per_minute == 0 || service.user_limit_per_minute == 0 {
                return Err(TableError::Invalid(format!(
                    "{}: a limit of 0",
                    service.name
                )));
            }
        }
        // Two instances per service is the most any profile runs today; the
        // check covers four so a bigger profile is caught here, not at bind.
        let mut ports = std::collections::HashSet::new();
        for service in &self.services {
            for replica in 0..4 {
                let port = self.instance_port(service, replica)?;
                if port == self.gateway.port || !ports.insert(port) {
                    return Err(TableError::Invalid(format!(
                        "{} instance {replica}: port {port} collides",
                        service.name
                    )));
                }
            }
        }
        Ok(())
    }

    /// The local port of a service's instance `replica` (0-based).
    pub fn instance_port(&self, service: &Service, replica: u16) -> Result<u16, TableError> {
        replica
            .checked_mul(self.local.replica_port_step)
            .and_then(|offset| service.port.checked_add(offset))
            .ok_or_else(|| {
                TableError::Invalid(format!(
                    "{} instance {replica}: port overflows",
                    service.name
                ))
            })
    }

    /// Every local instance a stack with `replicas` instances per service
    /// runs, first instances first: instance 0 is named like its service,
    /// instance i > 0 `<service>-<i+1>` (customer-service-2 on 50061).
    pub fn instances(&self, replicas: u16) -> Result<Vec<Instance<'_>>, TableError> {
        let mut instances = Vec::new();
        for replica in 0..replicas {
            for service in &self.services {
                instances.push(Instance {
                    name: match replica {
                        0 => service.name.clone(),
                        i => format!("{}-{}", service.name, i + 1),
                    },
                    service,
                    port: self.instance_port(service, replica)?,
                });
            }
        }
        Ok(instances)
    }

    /// The row of a service by name.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|service| service.name == name)
    }

    /// Label selector of the Envoy pods Envoy Gateway runs for this Gateway.
    pub fn envoy_selector(&self) -> String {
        format!(
            "gateway.envoyproxy.io/owning-gateway-name={},gateway.envoyproxy.io/owning-gateway-namespace={}",
            self.gateway.name, self.gateway.namespace
        )
    }
}

impl Service {
    /// Fully qualified gRPC service name, e.g. `customer.v1.CustomerService`.
    pub fn grpc_path_prefix(&self) -> String {
        format!("{}.{}", self.package, self.grpc_service)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_table_is_valid() {
        let table = ServiceTable::committed().unwrap();
        assert!(table.service("customer-service").is_some());
        assert!(table.service("product-service").is_some());
    }

    #[test]
    fn instance_ports_follow_the_step() {
        let table = ServiceTable::committed().unwrap();
        let customer = table.service("customer-service").unwrap();
        assert_eq!(table.instance_port(customer, 0).unwrap(), customer.port);
        assert_eq!(
            table.instance_port(customer, 1).unwrap(),
            customer.port + table.local.replica_port_step
        );
    }

    #[test]
    fn second_instances_follow_the_first_ones() {
        let table = ServiceTable::committed().unwrap();
        let listed: Vec<(String, &str, u16)> = table
            .instances(2)
            .unwrap()
            .into_iter()
            .map(|i| (i.name, i.service.name.as_str(), i.port))
            .collect();
        assert_eq!(
            listed,
            [
                ("customer-service".to_owned(), "customer-service", 50051),
                ("product-service".to_owned(), "product-service", 50052),
                ("customer-service-2".to_owned(), "customer-service", 50061),
                ("product-service-2".to_owned(), "product-service", 50062),
            ]
        );
    }

    #[test]
    fn colliding_ports_are_rejected() {
        let text = SERVICES_TOML.replace("port = 50052", "port = 50061");
        let err = ServiceTable::parse(&text).unwrap_err();
        assert!(err.to_string().contains("collides"), "{err}");
    }

    #[test]
    fn duplicate_collections_are_rejected() {
        let text = SERVICES_TOML.replace("\"products\"", "\"customers\"");
        let err = ServiceTable::parse(&text).unwrap_err();
        assert!(err.to_string().contains("duplicate collection"), "{err}");
    }

    #[test]
    fn lower_case_env_prefixes_are_rejected() {
        let text = SERVICES_TOML.replace("\"PRODUCT\"", "\"product\"");
        let err = ServiceTable::parse(&text).unwrap_err();
        assert!(err.to_string().contains("env_prefix"), "{err}");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let text = SERVICES_TOML.replace("[local]", "[local]\nreplica_port_stpe = 1");
        assert!(ServiceTable::parse(&text).is_err());
    }
}
