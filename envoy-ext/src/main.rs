//! `envoy-ext [ROOT]`: writes every rendered file (see `envoy_ext::render_all`)
//! under ROOT (default: the repository this binary was built from).
//!
//! `envoy-ext print <what>`: one fact of the service table, for scripts that
//! must not repeat it:
//! - `envoy-selector`: label selector of the gateway's Envoy pods;
//! - `services`: the service names, one a line;
//! - `instances <replicas>`: `<instance> <binary> <port>` per local instance
//!   (instance 0 is named like its binary, instance i > 0 `<binary>-<i+1>`).

use std::{env, fs, path::PathBuf, process::ExitCode};

use envoy_ext::services::ServiceTable;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let table = match ServiceTable::committed() {
        Ok(table) => table,
        Err(err) => {
            eprintln!("envoy-ext: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = match args.first().map(String::as_str) {
        Some("print") => print(&table, &args[1..]),
        Some(flag) if flag.starts_with('-') => Err(usage()),
        root => render(&table, root),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("envoy-ext: {message}");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> String {
    "usage: envoy-ext [ROOT] | envoy-ext print (envoy-selector | services | instances <replicas>)"
        .to_owned()
}

fn render(table: &ServiceTable, root: Option<&str>) -> Result<(), String> {
    let root = root
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."));
    let files = envoy_ext::render_all(api::DESCRIPTOR_SET, table).map_err(|e| e.to_string())?;
    for (path, content) in files {
        let path = root.join(path);
        fs::write(&path, content).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn print(table: &ServiceTable, args: &[String]) -> Result<(), String> {
    match args {
        [what] if what == "envoy-selector" => println!("{}", table.envoy_selector()),
        [what] if what == "services" => {
            for service in &table.services {
                println!("{}", service.name);
            }
        }
        [what, replicas] if what == "instances" => {
            let replicas: u16 = replicas
                .parse()
                .map_err(|_| format!("instances: {replicas:?} is not a count"))?;
            for instance in table.instances(replicas).map_err(|e| e.to_string())? {
                println!(
                    "{} {} {}",
                    instance.name, instance.service.name, instance.port
                );
            }
        }
        _ => return Err(usage()),
    }
    Ok(())
}
