//! The cluster and the local stack run the same gateway: every object of
//! `k8s/gateway/` reaches both overlays unchanged, except for the two things
//! a machine without Kubernetes forces on the local one (backendRefs to
//! `Backend`s instead of Services, and a GatewayClass pointing at the pinned
//! host Envoy). Needs `kubectl` on PATH (`just tools`; `just test-offline`
//! runs it), hence its place in crates/e2e.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::{collections::BTreeMap, path::Path, process::Command};

use serde::Deserialize;
use serde_norway::{Mapping, Value};

fn render(dir: &str) -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(dir);
    let output = Command::new("kubectl")
        .arg("kustomize")
        .arg(&path)
        .output()
        .unwrap_or_else(|err| {
            panic!("cannot run kubectl: {err} (run `just tools`, then `just test`)")
        });
    assert!(
        output.status.success(),
        "kustomize {dir}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .collect()
}

fn key(object: &Value) -> (String, String, String) {
    let field = |path: &[&str]| {
        path.iter()
            .try_fold(object, |v, k| v.get(k))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    (
        field(&["kind"]),
        field(&["metadata", "namespace"]),
        field(&["metadata", "name"]),
    )
}

fn by_key(objects: Vec<Value>) -> BTreeMap<(String, String, String), Value> {
    objects.into_iter().map(|o| (key(&o), o)).collect()
}

/// Undoes the local overlay's sanctioned differences.
fn without_local_differences(mut object: Value) -> Value {
    match object["kind"].as_str() {
        Some("GRPCRoute") => {
            for rule in object["spec"]["rules"].as_sequence_mut().unwrap() {
                for backend in rule["backendRefs"].as_sequence_mut().unwrap() {
                    let backend: &mut Mapping = backend.as_mapping_mut().unwrap();
                    assert_eq!(
                        backend.remove("group"),
                        Some("gateway.envoyproxy.io".into())
                    );
                    assert_eq!(backend.remove("kind"), Some("Backend".into()));
                }
            }
        }
        Some("GatewayClass") => {
            let spec = object["spec"].as_mapping_mut().unwrap();
            assert!(
                spec.remove("parametersRef").is_some(),
                "the local GatewayClass pins the host Envoy"
            );
        }
        _ => {}
    }
    object
}

/// Undoes the cluster overlay's sanctioned differences: two Envoy replicas
/// (its own EnvoyProxy) and the global tier (k8s/global-limits) on every
/// service policy, with the error-responses patch that goes with it.
fn without_cluster_differences(mut object: Value) -> Value {
    let kind = object["kind"].as_str().unwrap_or_default().to_owned();
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    match (kind.as_str(), name.as_str()) {
        ("GatewayClass", _) => {
            let spec = object["spec"].as_mapping_mut().unwrap();
            let reference = spec.remove("parametersRef").expect("cluster EnvoyProxy");
            assert_eq!(reference["name"].as_str(), Some("cluster"));
        }
        ("BackendTrafficPolicy", name) if name != "gateway-wide" => {
            let limits = object["spec"]["rateLimit"].as_mapping_mut().unwrap();
            let global = limits.remove("global").expect("a global tier");
            let limit = global["rules"][0]["limit"]["requests"].as_u64().unwrap();
            // The local rule becomes the burst guard, a multiple of the limit.
            let local = &mut object["spec"]["rateLimit"]["local"]["rules"][0]["limit"]["requests"];
            let factor = u64::from(e2e::service_table().gateway.burst_guard_factor);
            assert_eq!(local.as_u64(), Some(limit * factor), "{name}: burst guard");
            *local = limit.into();
        }
        ("EnvoyPatchPolicy", "error-responses") => {
            let patches = object["spec"]["jsonPatches"].as_sequence_mut().unwrap();
            let last = patches.pop().unwrap();
            assert_eq!(
                last["operation"]["path"].as_str(),
                Some("/typed_config/rate_limited_as_resource_exhausted")
            );
        }
        _ => {}
    }
    object
}

#[test]
fn both_overlays_carry_the_gateway_objects_unchanged() {
    let gateway = render("k8s/gateway");
    assert!(gateway.len() >= 8, "{} gateway objects", gateway.len());
    let cluster = by_key(render("k8s/overlays/cluster"));
    let local = by_key(render("k8s/overlays/local"));
    for object in gateway {
        let key = key(&object);
        let on_cluster = cluster
            .get(&key)
            .unwrap_or_else(|| panic!("{key:?} missing on the cluster"));
        assert_eq!(
            without_cluster_differences(on_cluster.clone()),
            object,
            "{key:?} differs on the cluster"
        );
        let on_local = local
            .get(&key)
            .unwrap_or_else(|| panic!("{key:?} missing locally"))
            .clone();
        assert_eq!(
            without_local_differences(on_local),
            object,
            "{key:?} differs locally"
        );
    }
}

#[test]
fn every_local_backend_stands_for_a_cluster_service() {
    let cluster = by_key(render("k8s/overlays/cluster"));
    let local = render("k8s/overlays/local");
    let backends: Vec<&Value> = local.iter().filter(|o| o["kind"] == "Backend").collect();
    assert!(!backends.is_empty());
    for backend in backends {
        let (_, namespace, name) = key(backend);
        let service = cluster
            .get(&("Service".to_owned(), namespace, name.clone()))
            .unwrap_or_else(|| panic!("Backend {name} has no Service of that name on the cluster"));
        let port = &backend["spec"]["endpoints"][0]["ip"]["port"];
        assert_eq!(
            &service["spec"]["ports"][0]["port"], port,
            "{name}: same port on both"
        );
    }
}

/// The local cluster (`just cluster-up`) deploys the same overlay as Docker
/// Desktop and kind; the only difference is the helm values layered for it,
/// and those may only swap the images it cannot pull for ones built on the
/// machine from the same pinned releases.
#[test]
fn the_local_cluster_only_swaps_images_for_locally_built_ones() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let values: Value = serde_norway::from_str(
        &std::fs::read_to_string(root.join("k8s/local-cluster/eg-values.yaml")).unwrap(),
    )
    .unwrap();
    let keys = |v: &Value| -> Vec<String> {
        v.as_mapping()
            .unwrap()
            .keys()
            .map(|k| k.as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(keys(&values), ["global"]);
    assert_eq!(keys(&values["global"]), ["images"]);
    let pins = xtask::pins::Pins::load().unwrap();
    let pin = |name: &str| pins.version(name).unwrap().to_owned();
    let expected = [
        (
            "envoyGateway",
            format!(
                "envoy-poc.local/envoyproxy/gateway:{}",
                pin("envoy-gateway")
            ),
        ),
        (
            "envoyProxy",
            format!(
                "envoy-poc.local/envoyproxy/envoy:distroless-v{}",
                pin("envoy")
            ),
        ),
        (
            "ratelimit",
            format!(
                "envoy-poc.local/envoyproxy/ratelimit:{}",
                pin("ratelimit").rsplit('-').next().unwrap()
            ),
        ),
    ];
    let images = &values["global"]["images"];
    assert_eq!(
        keys(images),
        expected.each_ref().map(|(k, _)| k.to_string())
    );
    for (name, image) in expected {
        assert_eq!(keys(&images[name]), ["image", "pullPolicy"], "{name}");
        assert_eq!(
            images[name]["image"].as_str(),
            Some(image.as_str()),
            "{name}"
        );
        // Never pulled: there is no registry to pull them from.
        assert_eq!(images[name]["pullPolicy"].as_str(), Some("Never"), "{name}");
    }
}

/// Users pull the official Redis image of the version the CI cluster builds
/// from Debian's package; the CI overlay only swaps the image.
#[test]
fn redis_is_the_same_version_for_users_and_the_ci_cluster() {
    let pins = xtask::pins::Pins::load().unwrap();
    let apt = pins.version("redis-server").unwrap().to_owned();
    let upstream = apt
        .split_once(':')
        .map_or(apt.as_str(), |(_, v)| v)
        .split('-')
        .next()
        .unwrap()
        .to_owned();
    let deployment_image = |dir: &str| {
        render(dir)
            .into_iter()
            .find(|o| o["kind"].as_str() == Some("Deployment"))
            .and_then(|d| {
                d["spec"]["template"]["spec"]["containers"][0]["image"]
                    .as_str()
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| panic!("{dir}: no Deployment image"))
    };
    assert_eq!(
        deployment_image("k8s/redis"),
        format!("docker.io/library/redis:{upstream}")
    );
    assert_eq!(
        deployment_image("k8s/local-cluster/overlays/redis"),
        format!("envoy-poc.local/redis:{upstream}")
    );
}

/// Users pull the official PostgreSQL image of the release the CI cluster
/// builds from Debian's postgresql-15 (and the scale profile and the store's
/// tests run); the CI overlay only swaps the image.
#[test]
fn postgres_is_the_same_version_for_users_and_the_ci_cluster() {
    let pins = xtask::pins::Pins::load().unwrap();
    let apt = pins.version("postgresql-15").unwrap().to_owned();
    // Debian revision off: <upstream>-<revision> -> <upstream>
    let upstream = apt.split('-').next().unwrap().to_owned();
    assert!(
        upstream.starts_with("15."),
        "postgresql-15 pin {apt} is not a 15.x release"
    );
    let statefulset = |dir: &str| {
        render(dir)
            .into_iter()
            .find(|o| o["kind"].as_str() == Some("StatefulSet"))
            .unwrap_or_else(|| panic!("{dir}: no StatefulSet"))
    };
    let image = |dir: &str| {
        statefulset(dir)["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("{dir}: no image"))
    };
    assert_eq!(
        image("k8s/postgres"),
        format!("docker.io/library/postgres:{upstream}")
    );
    assert_eq!(
        image("k8s/local-cluster/overlays/postgres"),
        format!("envoy-poc.local/postgres:{upstream}")
    );
    // Nothing else differs between the two.
    let mut local = statefulset("k8s/local-cluster/overlays/postgres");
    local["spec"]["template"]["spec"]["containers"][0]["image"] =
        statefulset("k8s/postgres")["spec"]["template"]["spec"]["containers"][0]["image"].clone();
    assert_eq!(local, statefulset("k8s/postgres"));
}
