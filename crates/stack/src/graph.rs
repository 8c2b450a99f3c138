//! Start order from `depends_on`: a process starts once everything it
//! depends on is ready; `down` stops in the reverse order.

use crate::{Error, profile::Process};

/// `processes` sorted so every process comes after its dependencies; among
/// independent processes the written order is kept.
pub fn start_order(processes: Vec<Process>) -> Result<Vec<Process>, Error> {
    for process in &processes {
        for dep in &process.depends_on {
            if !processes.iter().any(|p| &p.name == dep) {
                return Err(Error::Graph(format!(
                    "process {} depends on {dep}, which the profile does not run",
                    process.name
                )));
            }
        }
    }
    let mut placed: Vec<Process> = Vec::with_capacity(processes.len());
    let mut left = processes;
    while !left.is_empty() {
        let next = left.iter().position(|process| {
            process
                .depends_on
                .iter()
                .all(|dep| placed.iter().any(|p| &p.name == dep))
        });
        match next {
            Some(index) => placed.push(left.remove(index)),
            None => return Err(Error::Graph(format!("dependency cycle: {}", cycle(&left)))),
        }
    }
    Ok(placed)
}

/// A cycle among processes none of which can start, as `a -> b -> a`.
fn cycle(left: &[Process]) -> String {
    let mut path: Vec<&str> = Vec::new();
    let mut current = left.first().map(|p| p.name.as_str());
    while let Some(name) = current {
        if let Some(at) = path.iter().position(|seen| *seen == name) {
            let mut names = path[at..].to_vec();
            names.push(name);
            return names.join(" -> ");
        }
        path.push(name);
        // Every process left waits on one that is also left.
        current = left
            .iter()
            .find(|p| p.name == name)
            .and_then(|p| {
                p.depends_on
                    .iter()
                    .find(|dep| left.iter().any(|l| &l.name == *dep))
            })
            .map(String::as_str);
    }
    path.join(" -> ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Ready;

    fn process(name: &str, deps: &[&str]) -> Process {
        Process {
            name: name.into(),
            program: "/bin/true".into(),
            args: vec![],
            env: Default::default(),
            depends_on: deps.iter().map(|d| (*d).to_owned()).collect(),
            ready: Ready::Tcp { port: 1 },
            timeout_ms: 1000,
            ports: vec![],
            prepare: vec![],
        }
    }

    fn names(processes: &[Process]) -> Vec<&str> {
        processes.iter().map(|p| p.name.as_str()).collect()
    }

    #[test]
    fn dependencies_first_written_order_otherwise() {
        let order = start_order(vec![
            process("gateway", &["svc-a", "svc-b"]),
            process("svc-a", &[]),
            process("migrate", &["db"]),
            process("svc-b", &["migrate"]),
            process("db", &[]),
        ])
        .unwrap();
        assert_eq!(
            names(&order),
            ["svc-a", "db", "migrate", "svc-b", "gateway"]
        );
    }

    #[test]
    fn a_cycle_is_named() {
        let err = start_order(vec![
            process("free", &[]),
            process("a", &["b"]),
            process("b", &["c"]),
            process("c", &["a"]),
        ])
        .unwrap_err()
        .to_string();
        assert_eq!(err, "dependency cycle: a -> b -> c -> a");
        let err = start_order(vec![process("self", &["self"])])
            .unwrap_err()
            .to_string();
        assert_eq!(err, "dependency cycle: self -> self");
    }

    #[test]
    fn an_unknown_dependency_is_named() {
        let err = start_order(vec![process("gateway", &["redis"])])
            .unwrap_err()
            .to_string();
        assert!(err.contains("gateway depends on redis"), "{err}");
    }
}
