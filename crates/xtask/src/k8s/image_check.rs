//! `image-check`: the runtime image proven without Docker. Static binaries
//! from this machine's toolchain, packed into a scratch image with buildah
//! the way the Dockerfile's runtime stage does, then started from the
//! image's own filesystem as the image's user and probed like the kubelet.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::Child,
    time::Duration,
};

use super::{
    Error, Result, SERVICES,
    cmd::{Cmd, cmd},
    ensure, fresh_dir, grpc_service, image, read, wait_until,
};

const MUSL: &str = "x86_64-unknown-linux-musl";
const GNU: &str = "x86_64-unknown-linux-gnu";
/// The Dockerfile's runtime user ("nonroot" in distroless).
const USER: &str = "65532:65532";
const MAX_BINARY_BYTES: u64 = 20 * 1024 * 1024;

/// The musl target if rustup has it, else glibc with crt-static (a
/// static-pie executable): (target, RUSTFLAGS).
pub fn static_target(installed_targets: &str) -> (&'static str, &'static str) {
    if installed_targets.lines().any(|t| t.trim() == MUSL) {
        (MUSL, "")
    } else {
        (GNU, "-C target-feature=+crt-static")
    }
}

/// The paths `.dockerignore` lets into the build context (its `!` lines).
pub fn context_paths(dockerignore: &str) -> Vec<String> {
    dockerignore
        .lines()
        .filter_map(|l| l.trim().strip_prefix('!'))
        .map(|p| p.trim_end_matches('/').to_owned())
        .collect()
}

/// Statically linked, judged by what `file` and `ldd` print (`ldd` exits 0
/// on a static-pie too): `file` says static, `ldd` lists no library.
pub fn is_static(file: &str, ldd: &str) -> bool {
    let static_file = ["static-pie linked", "statically linked", "static linked"]
        .iter()
        .any(|s| file.contains(s));
    static_file && !ldd.contains("=>")
}

/// buildah with private storage under `work`: no daemon, no root-wide state.
struct Buildah {
    root: PathBuf,
    runroot: PathBuf,
}

impl Buildah {
    fn cmd(&self) -> Cmd {
        cmd("buildah")
            .arg("--root")
            .arg(&self.root)
            .arg("--runroot")
            .arg(&self.runroot)
            .args(["--storage-driver", "vfs"])
            .env("BUILDAH_ISOLATION", "chroot")
    }
}

/// What a run leaves behind is removed whatever happens: servers killed,
/// working containers deleted.
struct Cleanup<'a> {
    buildah: &'a Buildah,
    containers: Vec<String>,
    servers: Vec<Child>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for server in &mut self.servers {
            let _ = server.kill();
            let _ = server.wait();
        }
        for ctr in &self.containers {
            let _ = self.buildah.cmd().args(["rm", ctr]).output();
        }
    }
}

pub fn run(root: &Path, work: &Path) -> Result<()> {
    check_build_context(root, &work.join("docker-context"))?;
    let installed = cmd("rustup")
        .args(["target", "list", "--installed"])
        .read()
        .unwrap_or_default();
    let (target, rustflags) = static_target(&installed);
    println!("==> cargo build --release --target {target} (RUSTFLAGS={rustflags:?})");
    cmd("cargo")
        .dir(root)
        .env("RUSTFLAGS", rustflags)
        .args(["build", "--release", "--locked", "--target", target])
        .args(SERVICES.iter().flat_map(|svc| ["-p", svc]))
        .run()?;

    let dir = work.join("buildah");
    let buildah = Buildah {
        root: dir.join("storage"),
        runroot: dir.join("run"),
    };
    // Private storage: drop leftovers of earlier runs (containers, older tags).
    let _ = buildah.cmd().args(["rm", "--all"]).output();
    let _ = buildah.cmd().args(["rmi", "--all", "--force"]).output();
    let tag = image::current_tag(root)?;
    let mut cleanup = Cleanup {
        buildah: &buildah,
        containers: Vec::new(),
        servers: Vec::new(),
    };
    for svc in SERVICES.iter().copied() {
        let binary = root.join(format!("target/{target}/release/{svc}"));
        check_service(
            &mut cleanup,
            &binary,
            svc,
            &format!("envoy-poc/{svc}:{tag}"),
            &dir,
        )?;
    }
    println!("image-check: ok");
    Ok(())
}

/// The Docker build context (the `!` lines of .dockerignore) must hold the
/// whole workspace, or `docker build` fails where nobody tested it.
fn check_build_context(root: &Path, ctx: &Path) -> Result<()> {
    fresh_dir(ctx)?;
    let paths = context_paths(&read(&root.join(".dockerignore"))?);
    cmd("cp")
        .dir(root)
        .args(["-r", "--parents"])
        .args(&paths)
        .arg(ctx)
        .run()?;
    cmd("find")
        .arg(ctx)
        .args([
            "-name", "target", "-type", "d", "-prune", "-exec", "rm", "-rf", "{}", "+",
        ])
        .run()?;
    cmd("cargo")
        .dir(ctx)
        .args([
            "metadata",
            "--no-deps",
            "--offline",
            "--format-version",
            "1",
        ])
        .read()
        .map_err(|err| {
            Error::Check(format!(
                "the Docker build context misses workspace files (see .dockerignore): {err}"
            ))
        })?;
    println!(
        "docker build context: workspace loads from {}",
        paths.join(" ")
    );
    Ok(())
}

fn check_service(
    cleanup: &mut Cleanup<'_>,
    binary: &Path,
    svc: &str,
    image: &str,
    dir: &Path,
) -> Result<()> {
    let buildah = cleanup.buildah;
    println!("==> {svc}");
    let file = cmd("file").arg("-b").arg(binary).read()?;
    let ldd = cmd("ldd").arg(binary).output()?;
    let ldd =
        String::from_utf8_lossy(&ldd.stdout).into_owned() + &String::from_utf8_lossy(&ldd.stderr);
    print!("{file}");
    ensure(is_static(&file, &ldd), || {
        format!("{} is dynamically linked: {ldd}", binary.display())
    })?;
    println!("ldd: {}", ldd.trim().replace('\t', ""));

    // The same layout as the Dockerfile's runtime stage.
    let ctr = buildah
        .cmd()
        .args(["from", "--name", &format!("check-{svc}"), "scratch"])
        .read()?;
    let ctr = ctr.trim().to_owned();
    cleanup.containers.push(ctr.clone());
    buildah
        .cmd()
        .args(["copy", "--chown", USER, &ctr])
        .arg(binary)
        .arg("/service")
        .read()?;
    buildah
        .cmd()
        .args([
            "config",
            "--user",
            USER,
            "--entrypoint",
            r#"["/service"]"#,
            "--cmd",
            "",
        ])
        .args(["--port", "50051", "--port", "50052"])
        .args([
            "--label",
            &format!("org.opencontainers.image.title={svc}"),
            &ctr,
        ])
        .run()?;
    buildah
        .cmd()
        .args(["commit", "--quiet", "--rm", &ctr, image])
        .read()?;
    cleanup.containers.pop();
    let config = buildah
        .cmd()
        .args(["inspect", "--type", "image", "--format"])
        .args([
            "user={{.OCIv1.Config.User}} entrypoint={{.OCIv1.Config.Entrypoint}}",
            image,
        ])
        .read()?;
    println!("{}", config.trim());
    ensure(config.contains(&format!("user={USER}")), || {
        format!("{image}: runs as {config}, want user {USER}")
    })?;
    let size = buildah
        .cmd()
        .args(["images", "--noheading", "--format", "{{.Size}}", image])
        .read()?;
    let bytes = std::fs::metadata(binary)
        .map_err(|source| Error::Io {
            path: binary.to_owned(),
            source,
        })?
        .len();
    println!(
        "image {image}: {} (binary {} KiB)",
        size.trim(),
        bytes / 1024
    );
    ensure(bytes <= MAX_BINARY_BYTES, || {
        format!("{svc} binary over 20 MiB")
    })?;

    // Run the entrypoint from the image's filesystem (nothing else in it) as
    // the image's user: `buildah run` for --help, then a real server started
    // by chroot into the mounted image, probed the way the kubelet does.
    let ctr = buildah
        .cmd()
        .args(["from", "--name", &format!("run-{svc}"), image])
        .read()?;
    let ctr = ctr.trim().to_owned();
    cleanup.containers.push(ctr.clone());
    buildah
        .cmd()
        .args(["run", "--user", USER, &ctr, "--", "/service", "--help"])
        .read()?;
    let rootfs = buildah.cmd().args(["mount", &ctr]).read()?;
    let port = free_port()?;
    let log = dir.join(format!("{svc}.log"));
    let server = cmd("chroot")
        .arg(format!("--userspec={USER}"))
        .arg(rootfs.trim())
        .args([
            "/service",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ])
        .args(["--drain-timeout", "2s"])
        .spawn_detached(&log)?;
    let pid = server.id();
    cleanup.servers.push(server);
    let addr = format!("127.0.0.1:{port}");
    let serving = wait_until(
        &format!("{svc} from the image to be SERVING"),
        Duration::from_secs(10),
        Duration::from_millis(200),
        || {
            let exited = cleanup.servers.last_mut().map(|s| s.try_wait());
            if let Some(Ok(Some(status))) = exited {
                return Err(Error::Check(format!(
                    "{svc} from the image exited: {status}"
                )));
            }
            health(&addr, "")
        },
    );
    if let Err(err) = serving {
        let log = read(&log).unwrap_or_default();
        return Err(Error::Check(format!("{err}\n{log}")));
    }
    let name = grpc_service(svc);
    ensure(health(&addr, &name)?, || {
        format!("{svc}: health {name:?} is not SERVING")
    })?;
    println!("{svc} from the image: health \"\" and {name:?} SERVING on {addr} as uid 65532");

    // SIGTERM must end it within the drain timeout, with status 0.
    cmd("kill").args(["-TERM", &pid.to_string()]).run()?;
    let mut status = None;
    wait_until(
        &format!("{svc} to exit after SIGTERM"),
        Duration::from_secs(4),
        Duration::from_millis(100),
        || {
            status = cleanup
                .servers
                .last_mut()
                .and_then(|s| s.try_wait().ok().flatten());
            Ok(status.is_some())
        },
    )?;
    cleanup.servers.pop();
    ensure(status.is_some_and(|s| s.success()), || {
        format!(
            "{svc} exited with {status:?} after SIGTERM\n{}",
            read(&log).unwrap_or_default()
        )
    })?;
    println!("{svc}: SIGTERM -> clean exit");
    buildah.cmd().args(["umount", &ctr]).read()?;
    Ok(())
}

/// A port nobody listens on (50051/50052 may be taken by a dev server).
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|source| Error::Io {
        path: "127.0.0.1:0".into(),
        source,
    })?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|source| Error::Io {
            path: "127.0.0.1:0".into(),
            source,
        })
}

/// grpc.health.v1 says SERVING for `service` (a failed call is a no).
fn health(addr: &str, service: &str) -> Result<bool> {
    let request = serde_json::json!({ "service": service }).to_string();
    let out = cmd("grpcurl")
        .args(["-plaintext", "-max-time", "1", "-d", &request, addr])
        .arg("grpc.health.v1.Health/Check")
        .output()?;
    Ok(serving(&String::from_utf8_lossy(&out.stdout)))
}

/// grpcurl's JSON answer to Health/Check says SERVING.
pub fn serving(grpcurl_output: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(grpcurl_output)
        .is_ok_and(|v| v["status"] == "SERVING")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn musl_when_installed_else_static_glibc() {
        assert_eq!(
            static_target("x86_64-unknown-linux-gnu\nx86_64-unknown-linux-musl\n"),
            (MUSL, "")
        );
        assert_eq!(
            static_target("x86_64-unknown-linux-gnu\n"),
            (GNU, "-C target-feature=+crt-static")
        );
        assert_eq!(static_target("").0, GNU);
    }

    #[test]
    fn context_is_the_negated_lines() {
        let ignore = read(&super::super::root().join(".dockerignore")).unwrap();
        let paths = context_paths(&ignore);
        assert_eq!(
            paths,
            ["Cargo.toml", "Cargo.lock", "crates", "envoy-ext", "proto"]
        );
        assert_eq!(context_paths("*\n!a/\n# !not\n!b"), ["a", "b"]);
    }

    #[test]
    fn static_means_file_says_so_and_ldd_lists_nothing() {
        let pie =
            "ELF 64-bit LSB pie executable, x86-64, version 1 (SYSV), static-pie linked, stripped";
        assert!(is_static(pie, "\tstatically linked\n"));
        assert!(is_static(
            "ELF 64-bit LSB executable, statically linked",
            "not a dynamic executable"
        ));
        let dynamic = "ELF 64-bit LSB pie executable, dynamically linked, interpreter /lib64/ld-linux-x86-64.so.2";
        assert!(!is_static(
            dynamic,
            "\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x7f)\n"
        ));
        // file fooled, ldd not: still dynamic.
        assert!(!is_static(pie, "\tlibgcc_s.so.1 => /lib/libgcc_s.so.1\n"));
    }

    #[test]
    fn serving_reads_grpcurls_json() {
        assert!(serving("{\n  \"status\": \"SERVING\"\n}\n"));
        assert!(!serving("{\n  \"status\": \"NOT_SERVING\"\n}\n"));
        assert!(!serving(""));
    }

    #[test]
    fn free_ports_are_bindable() {
        let port = free_port().unwrap();
        assert!(TcpListener::bind(("127.0.0.1", port)).is_ok());
    }
}
