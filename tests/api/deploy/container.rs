//! The container and the service file against the README and the daemon (no container engine
//! runs here, so the image is not built): the binary the Dockerfile builds and starts is this
//! one, its port is the one it binds and exposes, every variable it or compose.yaml sets is
//! documented, and its health check asks a route the daemon answers.

use crate::helpers::spawn_app;

fn file(name: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The Dockerfile's instructions, continuation lines joined.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(head) = t.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(t);
        if let Some((op, rest)) = current.trim().split_once(char::is_whitespace) {
            out.push((op.to_ascii_uppercase(), rest.trim().to_string()));
        }
        current.clear();
    }
    out
}

/// Names in the README's configuration table (first column, each `NAME` in backquotes).
fn documented_variables(readme: &str) -> Vec<String> {
    let section = readme
        .split("## Configuration")
        .nth(1)
        .expect("a Configuration section")
        .split("\n## ")
        .next()
        .unwrap();
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .flat_map(|l| {
            let first = l.split('|').nth(1).unwrap_or("");
            first
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test]
async fn the_dockerfile_matches_the_readme_and_the_daemon() {
    let docker = file("Dockerfile");
    let readme = file("README.md");
    let steps = instructions(&docker);
    let all = |op: &str| -> Vec<&String> {
        steps
            .iter()
            .filter(|(o, _)| o == op)
            .map(|(_, a)| a)
            .collect()
    };

    // Multi-stage: a Rust build stage, a Debian slim runtime with Debian's Chromium.
    let froms = all("FROM");
    assert!(froms.len() >= 2, "{froms:?}");
    assert!(
        froms[0].starts_with("rust:") && froms[0].contains(" AS build"),
        "{froms:?}"
    );
    assert!(
        froms.last().unwrap().starts_with("debian:") && froms.last().unwrap().contains("-slim")
    );
    let runtime_runs: Vec<&String> = {
        let last_from = steps.iter().rposition(|(o, _)| o == "FROM").unwrap();
        steps[last_from..]
            .iter()
            .filter(|(o, _)| o == "RUN")
            .map(|(_, a)| a)
            .collect()
    };
    assert!(
        runtime_runs
            .iter()
            .any(|r| r.contains("apt-get install") && r.contains(" chromium")),
        "the runtime installs Debian's chromium: {runtime_runs:?}"
    );

    // The binary: built by name, copied and started.
    let bin = "sincro-whatsapp";
    assert!(env!("CARGO_BIN_EXE_sincro-whatsapp").ends_with(bin));
    assert!(
        all("RUN")
            .iter()
            .any(|r| r.contains(&format!("--bin {bin}")))
    );
    let entry = all("ENTRYPOINT");
    assert!(
        entry
            .last()
            .unwrap()
            .contains(&format!("/usr/local/bin/{bin}")),
        "{entry:?}"
    );
    let cmd = all("CMD");
    assert!(cmd.last().unwrap().contains("\"serve\""), "{cmd:?}");
    assert!(
        readme.contains(&format!("`{bin} serve`")),
        "serve in the commands table"
    );

    // Not root.
    let user = all("USER");
    let user = user.last().expect("a USER");
    assert!(!["root", "0", "0:0"].contains(&user.as_str()), "{user}");

    // Every ENV is a documented variable; BIND_ADDR's port is the exposed one.
    let envs: Vec<(String, String)> = all("ENV")
        .iter()
        .flat_map(|e| {
            e.split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        })
        .collect();
    let documented = documented_variables(&readme);
    for (k, _) in &envs {
        assert!(
            documented.contains(k),
            "{k} set in the Dockerfile is not in the README table"
        );
    }
    let bind = &envs
        .iter()
        .find(|(k, _)| k == "BIND_ADDR")
        .expect("BIND_ADDR")
        .1;
    let port = bind.rsplit(':').next().unwrap();
    assert!(
        bind.starts_with("0.0.0.0:"),
        "{bind}: reachable from outside the container"
    );
    let exposed = all("EXPOSE");
    assert_eq!(exposed.last().map(|s| s.as_str()), Some(port));
    let data_dir = &envs
        .iter()
        .find(|(k, _)| k == "DATA_DIR")
        .expect("DATA_DIR")
        .1;
    assert!(all("VOLUME").iter().any(|v| v.contains(data_dir.as_str())));
    let chromium = &envs
        .iter()
        .find(|(k, _)| k == "CHROMIUM_PATH")
        .expect("CHROMIUM_PATH")
        .1;
    assert_eq!(
        chromium, "/usr/bin/chromium",
        "where Debian's package puts it"
    );

    // The health check asks the daemon's readiness route on that port, and the daemon answers it.
    let health = all("HEALTHCHECK");
    let health = health.last().expect("a HEALTHCHECK");
    let url = health
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("a URL in the HEALTHCHECK");
    let rest = url.strip_prefix("http://127.0.0.1:").expect("on loopback");
    let (hport, path) = rest.split_once('/').unwrap();
    assert_eq!(hport, port);
    let path = format!("/{path}");
    assert_eq!(path, "/readyz");
    assert!(
        readme.contains(&format!("`GET {path}`")),
        "{path} documented"
    );
    let mut app = spawn_app().await;
    let r = reqwest::get(format!("{}{path}", app.base)).await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "the daemon answers {path}");
    app.shutdown().await;
}

#[test]
fn compose_and_the_service_file_set_only_documented_variables() {
    let readme = file("README.md");
    let documented = documented_variables(&readme);
    let compose = file("compose.yaml");
    let service_block = compose
        .split("  sincro-whatsapp:")
        .nth(1)
        .expect("the daemon's service");
    let env_block = service_block
        .split("environment:")
        .nth(1)
        .unwrap()
        .split("\n    ports:")
        .next()
        .unwrap();
    let names: Vec<&str> = env_block
        .lines()
        .filter_map(|l| l.trim().split_once(':').map(|(k, _)| k))
        .filter(|k| !k.is_empty())
        .collect();
    assert!(names.contains(&"LOCAL_PG_URL"), "{names:?}");
    for n in &names {
        assert!(
            documented.iter().any(|d| d == n),
            "{n} (compose.yaml) is not in the README table"
        );
    }
    assert!(compose.contains("build: ."));
    assert!(compose.contains("postgres:"));

    let unit = file("examples/sincro-whatsapp.service");
    for option in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "ProtectHome=yes",
        "ExecStart=/usr/local/bin/sincro-whatsapp serve",
    ] {
        assert!(
            unit.lines().any(|l| l.trim() == option),
            "{option} in the unit"
        );
    }
    let data_dir = unit
        .lines()
        .find_map(|l| l.trim().strip_prefix("Environment=DATA_DIR="))
        .expect("DATA_DIR in the unit");
    assert!(
        unit.lines()
            .any(|l| l.trim() == format!("ReadWritePaths={data_dir}")),
        "the data directory is the writable path"
    );
    for l in unit
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Environment="))
    {
        let name = l.split('=').next().unwrap();
        assert!(
            documented.iter().any(|d| d == name),
            "{name} (unit) is not in the README table"
        );
    }
}
