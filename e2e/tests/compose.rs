//! `docker-compose.yml`, checked by construction.
//!
//! No Docker engine runs on the build machines, so the stack cannot be started here. This
//! test reads the compose file (YAML anchors and `<<:` merge keys resolved, `${VAR:-default}`
//! interpolated with the defaults), the Dockerfile, the nginx configs under `deploy/nginx`,
//! the Postgres init scripts and the workspace manifests, and checks that they agree:
//!
//! - every service has an image or a build; build contexts and Dockerfiles exist;
//! - the services running the Agora image run a binary the workspace has, and the Dockerfile
//!   builds and installs every binary the compose file runs;
//! - every environment variable given to an Agora process is one its configuration reads
//!   (the allow-list below, itself checked against the crates' sources), and the required
//!   ones are present; the values point at services, ports and databases that exist;
//! - listen addresses bind 0.0.0.0 on the port the healthcheck and the load balancer use;
//!   each nginx upstream names exactly the replicas of one API and their port;
//! - `depends_on` targets exist, conditions are valid and satisfiable, there is no cycle;
//! - Kafka runs in KRaft mode (no ZooKeeper), with a coherent listener/controller setup.
//!
//! Every check appends to a list of problems, so a failure lists them all; a second test
//! feeds deliberately broken copies of the files (misspelled names, wrong ports) and expects
//! each to be caught.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use e2e::compose::*;
use serde_yaml::Value;

// -------------------------------------------------------------------------------------------
// What the Agora processes read from their environment.
// -------------------------------------------------------------------------------------------

/// One Agora binary's configuration: where its sources are, the variables it reads, and the
/// ones a compose service running it must set.
struct BinaryConfig {
    binary: &'static str,
    /// Source files or directories (relative to the workspace root) that read the variables.
    sources: &'static [&'static str],
    allowed: &'static [&'static str],
    required: &'static [&'static str],
    /// The variable holding its listen address, for the servers.
    listen_var: Option<&'static str>,
}

/// Mirrors the configuration table (DESIGN.md "Configuration" and each binary's
/// `config.rs`). `RUST_LOG` is read implicitly by tracing-subscriber's `EnvFilter`.
const BINARIES: &[BinaryConfig] = &[
    BinaryConfig {
        binary: "command-api",
        sources: &["command-api/src", "platform/src", "eventstore/src/kafka.rs"],
        allowed: &[
            "DATABASE_URL",
            "COMMAND_API_ADDR",
            "AGORA_JWT_SECRET",
            "AGORA_JWT_ISSUER",
            "AGORA_JWT_JWKS_URL",
            "AGORA_JWT_AUDIENCE",
            "AGORA_JWT_ROLES_CLAIM",
            "AGORA_JWT_JWKS_MIN_REFETCH_MS",
            "KAFKA_BROKERS",
            "AGORA_TOPIC_PREFIX",
            "AGORA_DB_POOL_SIZE",
            "AGORA_HTTP_WORKERS",
            "AGORA_SHUTDOWN_DRAIN_MS",
            "AGORA_ORDER_PAYMENT_TTL",
            "AGORA_MAX_OPEN_ORDERS_PER_CUSTOMER",
            "AGORA_WEBHOOK_KEY",
            "AGORA_PAYMENTS",
            "AGORA_STRIPE_SECRET_KEY",
            "AGORA_STRIPE_WEBHOOK_SECRETS",
            "AGORA_PII_KEY",
            "AGORA_PII_RETIRED_KEYS",
            "AGORA_FAULT_ABORT_AT",
            "AGORA_SMTP_URL",
            "AGORA_MAIL_DIR",
            "AGORA_MAIL_FROM",
            "AGORA_SHOP_NAME",
            "AGORA_TRACKING_URL",
            "AGORA_EMAIL_MAX_ATTEMPTS",
            "AGORA_EMAIL_RETRY_BASE",
            "AGORA_REACTORS",
            "AGORA_SEQUENCER",
            "AGORA_SEQUENCER_DATABASE_URL",
            "AGORA_LOG_SIGNING_KEY",
            KAFKA_PROPERTY_PREFIX,
            "RUST_LOG",
            "AGORA_LOG_FORMAT",
        ],
        required: &["DATABASE_URL", "AGORA_JWT_SECRET", "COMMAND_API_ADDR"],
        listen_var: Some("COMMAND_API_ADDR"),
    },
    BinaryConfig {
        binary: "query-api",
        sources: &["query-api/src", "platform/src"],
        allowed: &[
            "READ_DATABASE_URL",
            "DATABASE_URL",
            "QUERY_API_ADDR",
            "AGORA_JWT_SECRET",
            "AGORA_JWT_ISSUER",
            "AGORA_JWT_JWKS_URL",
            "AGORA_JWT_AUDIENCE",
            "AGORA_JWT_ROLES_CLAIM",
            "AGORA_JWT_JWKS_MIN_REFETCH_MS",
            "AGORA_CONSISTENCY_WAIT_MS",
            "AGORA_DB_POOL_SIZE",
            "AGORA_HTTP_WORKERS",
            "AGORA_PII_KEY",
            "AGORA_PII_RETIRED_KEYS",
            "RUST_LOG",
            "AGORA_LOG_FORMAT",
        ],
        // DATABASE_URL: the audit endpoints read the event store (READ_DATABASE_URL falls
        // back to it).
        required: &["DATABASE_URL", "AGORA_JWT_SECRET", "QUERY_API_ADDR"],
        listen_var: Some("QUERY_API_ADDR"),
    },
    BinaryConfig {
        binary: "projector",
        sources: &["projector/src", "platform/src", "eventstore/src/kafka.rs"],
        allowed: &[
            "DATABASE_URL",
            "READ_DATABASE_URL",
            "KAFKA_BROKERS",
            "AGORA_TOPIC_PREFIX",
            "AGORA_PROJECTOR_GROUP",
            "PROJECTOR_ADDR",
            "AGORA_PROJECTOR_BATCH",
            KAFKA_PROPERTY_PREFIX,
            "RUST_LOG",
            "AGORA_LOG_FORMAT",
        ],
        required: &["DATABASE_URL", "PROJECTOR_ADDR"],
        listen_var: Some("PROJECTOR_ADDR"),
    },
    BinaryConfig {
        binary: "agora",
        sources: &["cli/src"],
        allowed: &[
            "DATABASE_URL",
            "READ_DATABASE_URL",
            "AGORA_JWT_SECRET",
            "RUST_LOG",
        ],
        required: &["DATABASE_URL"],
        listen_var: None,
    },
    BinaryConfig {
        binary: "relay",
        sources: &["eventstore/src/bin/relay.rs"],
        allowed: &["DATABASE_URL", "KAFKA_BROKERS", "AGORA_TOPIC_PREFIX"],
        required: &["DATABASE_URL", "KAFKA_BROKERS"],
        listen_var: None,
    },
];

/// The prefix of the Kafka client's properties (`AGORA_KAFKA_<PROPERTY>`, read by
/// `eventstore::kafka`): a binary that allows it takes every variable it begins.
const KAFKA_PROPERTY_PREFIX: &str = "AGORA_KAFKA_";

/// Whether `config` reads the variable `name`.
fn reads(config: &BinaryConfig, name: &str) -> bool {
    config.allowed.contains(&name)
        || (name.starts_with(KAFKA_PROPERTY_PREFIX)
            && config.allowed.contains(&KAFKA_PROPERTY_PREFIX))
}

/// Variables read without their name appearing in our sources.
const IMPLICIT_VARIABLES: &[&str] = &["RUST_LOG"];

/// The APIs behind a load balancer: binary, load-balancer service, published port.
const LOAD_BALANCED: &[(&str, &str, u16)] = &[
    ("command-api", "lb-command", 8080),
    ("query-api", "lb-query", 8081),
];

/// Binaries that run as several replicas, and the least number of them.
const REPLICATED: &[(&str, usize)] = &[("command-api", 2), ("query-api", 2), ("projector", 2)];

fn binary_config(binary: &str) -> Option<&'static BinaryConfig> {
    BINARIES.iter().find(|config| config.binary == binary)
}

// -------------------------------------------------------------------------------------------
// Inputs: the files under test, overridable for the mutation test.
// -------------------------------------------------------------------------------------------

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e/ sits in the workspace")
        .to_path_buf()
}

struct Inputs {
    root: PathBuf,
    /// Files replaced by the mutation test: path relative to the root → content.
    overrides: BTreeMap<String, String>,
}

impl Inputs {
    fn new() -> Inputs {
        Inputs {
            root: workspace_root(),
            overrides: BTreeMap::new(),
        }
    }

    fn read(&self, relative: &str) -> Option<String> {
        let relative = relative.trim_start_matches("./");
        if let Some(text) = self.overrides.get(relative) {
            return Some(text.clone());
        }
        std::fs::read_to_string(self.root.join(relative)).ok()
    }

    fn exists(&self, relative: &str) -> bool {
        let relative = relative.trim_start_matches("./");
        self.overrides.contains_key(relative) || self.root.join(relative).exists()
    }

    /// The files directly inside a directory of the repository, sorted.
    fn list_dir(&self, relative: &str) -> Vec<String> {
        let relative = relative.trim_start_matches("./").trim_end_matches('/');
        let mut names: Vec<String> = std::fs::read_dir(self.root.join(relative))
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|entry| entry.path().is_file())
                    .map(|entry| format!("{relative}/{}", entry.file_name().to_string_lossy()))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Replaces the first occurrence of `from` in a file by `to`; panics if `from` is absent
    /// (the mutation would test nothing).
    fn mutate(&mut self, file: &str, from: &str, to: &str) {
        let text = self
            .read(file)
            .unwrap_or_else(|| panic!("{file} is missing"));
        assert!(
            text.contains(from),
            "mutation target {from:?} not found in {file}: update the mutation test"
        );
        self.overrides
            .insert(file.to_owned(), text.replacen(from, to, 1));
    }
}

// The small parsers (interpolation, compose values, nginx, Dockerfile) are in
// e2e/src/compose.rs.

/// The binaries of the workspace, from the manifests: explicit `[[bin]]` targets,
/// `src/main.rs` (named after the package) and `src/bin/*.rs` (named after the file).
fn workspace_binaries(inputs: &Inputs) -> BTreeSet<String> {
    let root_manifest = inputs.read("Cargo.toml").expect("the workspace manifest");
    let members_start = root_manifest
        .find("members")
        .expect("the workspace lists its members");
    let list = &root_manifest[members_start..];
    let list = &list[list.find('[').expect("members = [") + 1..list.find(']').expect("]")];
    let members: Vec<String> = list
        .split(',')
        .map(|member| member.trim().trim_matches('"').to_owned())
        .filter(|member| !member.is_empty())
        .collect();

    let mut binaries = BTreeSet::new();
    for member in members {
        let Some(manifest) = inputs.read(&format!("{member}/Cargo.toml")) else {
            continue;
        };
        let mut section = String::new();
        let mut package_name = None;
        let mut explicit: Vec<(Option<String>, Option<String>)> = Vec::new();
        for line in manifest.lines() {
            let line = line.trim();
            if line.starts_with('[') {
                section = line.to_owned();
                if section == "[[bin]]" {
                    explicit.push((None, None));
                }
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = value.trim().trim_matches('"').to_owned();
            match (section.as_str(), key.trim()) {
                ("[package]", "name") => package_name = Some(value),
                ("[[bin]]", "name") => explicit.last_mut().expect("[[bin]]").0 = Some(value),
                ("[[bin]]", "path") => explicit.last_mut().expect("[[bin]]").1 = Some(value),
                _ => {}
            }
        }
        let explicit_paths: BTreeSet<String> = explicit
            .iter()
            .filter_map(|(_, path)| path.clone())
            .collect();
        binaries.extend(explicit.iter().filter_map(|(name, _)| name.clone()));
        if inputs.exists(&format!("{member}/src/main.rs"))
            && !explicit_paths.contains("src/main.rs")
        {
            binaries.extend(package_name.clone());
        }
        for file in inputs.list_dir(&format!("{member}/src/bin")) {
            let relative = file.trim_start_matches(&format!("{member}/")).to_owned();
            if let Some(stem) = file.strip_suffix(".rs").and_then(|f| f.rsplit('/').next()) {
                if !explicit_paths.contains(&relative) {
                    binaries.insert(stem.to_owned());
                }
            }
        }
    }
    binaries
}

// -------------------------------------------------------------------------------------------
// The checks.
// -------------------------------------------------------------------------------------------

/// A service running the Agora image, and the binary it runs.
struct AgoraService {
    name: String,
    binary: String,
}

struct Stack {
    services: BTreeMap<String, Value>,
    top_volumes: BTreeSet<String>,
    agora: Vec<AgoraService>,
    problems: Vec<String>,
}

impl Stack {
    fn problem(&mut self, text: impl Into<String>) {
        self.problems.push(text.into());
    }

    fn service(&self, name: &str) -> Option<&Value> {
        self.services.get(name)
    }

    fn replicas_of(&self, binary: &str) -> Vec<&AgoraService> {
        self.agora.iter().filter(|s| s.binary == binary).collect()
    }
}

/// Runs every check; returns the problems found (empty: all good).
fn check(inputs: &Inputs) -> Vec<String> {
    let Some(text) = inputs.read("docker-compose.yml") else {
        return vec!["docker-compose.yml is missing".into()];
    };
    let mut document: Value = match serde_yaml::from_str(&text) {
        Ok(document) => document,
        Err(error) => return vec![format!("docker-compose.yml does not parse: {error}")],
    };
    if let Err(error) = document.apply_merge() {
        return vec![format!(
            "docker-compose.yml: `<<` merge keys do not resolve: {error}"
        )];
    }

    let mut stack = Stack {
        services: BTreeMap::new(),
        top_volumes: BTreeSet::new(),
        agora: Vec::new(),
        problems: Vec::new(),
    };
    match document.get("services").and_then(Value::as_mapping) {
        Some(services) => {
            for (name, service) in services {
                let name = name.as_str().unwrap_or_default().to_owned();
                stack.services.insert(name, service.clone());
            }
        }
        None => return vec!["docker-compose.yml has no `services` mapping".into()],
    }
    if let Some(volumes) = document.get("volumes").and_then(Value::as_mapping) {
        stack.top_volumes = volumes
            .keys()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
    }
    if let Some(top) = document.as_mapping() {
        for key in top.keys().filter_map(Value::as_str) {
            let known = [
                "name", "services", "volumes", "networks", "configs", "secrets",
            ];
            if !known.contains(&key) && !key.starts_with("x-") {
                stack.problem(format!(
                    "unknown top-level key `{key}` (extension fields start with x-)"
                ));
            }
        }
    }

    check_service_keys(&mut stack);
    check_images_and_commands(inputs, &mut stack);
    check_environment(&mut stack);
    check_databases(inputs, &mut stack);
    check_kafka(&mut stack);
    check_log_signer(&mut stack);
    check_topic_creation(inputs, &mut stack);
    check_listen_addresses_and_healthchecks(&mut stack);
    check_depends_on(&mut stack);
    check_load_balancers(inputs, &mut stack);
    check_tls_at_load_balancers(inputs, &mut stack);
    check_volumes(inputs, &mut stack);
    check_dockerfile(inputs, &mut stack);
    stack.problems
}

/// The service attributes of the Compose Specification (compose-spec.json, 2025), so a
/// misspelled key (`enviroment:`, `healtcheck:`) is not silently ignored here.
const SERVICE_KEYS: &[&str] = &[
    "annotations",
    "attach",
    "blkio_config",
    "build",
    "cap_add",
    "cap_drop",
    "cgroup",
    "cgroup_parent",
    "command",
    "configs",
    "container_name",
    "cpu_count",
    "cpu_percent",
    "cpu_period",
    "cpu_quota",
    "cpu_rt_period",
    "cpu_rt_runtime",
    "cpu_shares",
    "cpus",
    "cpuset",
    "credential_spec",
    "depends_on",
    "deploy",
    "develop",
    "device_cgroup_rules",
    "devices",
    "dns",
    "dns_opt",
    "dns_search",
    "domainname",
    "entrypoint",
    "env_file",
    "environment",
    "expose",
    "extends",
    "external_links",
    "extra_hosts",
    "gpus",
    "group_add",
    "healthcheck",
    "hostname",
    "image",
    "init",
    "ipc",
    "isolation",
    "label_file",
    "labels",
    "links",
    "logging",
    "mac_address",
    "mem_limit",
    "mem_reservation",
    "mem_swappiness",
    "memswap_limit",
    "models",
    "network_mode",
    "networks",
    "oom_kill_disable",
    "oom_score_adj",
    "pid",
    "pids_limit",
    "platform",
    "ports",
    "post_start",
    "pre_stop",
    "privileged",
    "profiles",
    "provider",
    "pull_policy",
    "pull_refresh_after",
    "read_only",
    "restart",
    "runtime",
    "scale",
    "secrets",
    "security_opt",
    "shm_size",
    "stdin_open",
    "stop_grace_period",
    "stop_signal",
    "storage_opt",
    "sysctls",
    "tmpfs",
    "tty",
    "ulimits",
    "use_api_socket",
    "user",
    "userns_mode",
    "uts",
    "volumes",
    "volumes_from",
    "working_dir",
];

const HEALTHCHECK_KEYS: &[&str] = &[
    "disable",
    "interval",
    "retries",
    "start_interval",
    "start_period",
    "test",
    "timeout",
];

/// Every key of every service (and of its healthcheck) is a Compose attribute.
fn check_service_keys(stack: &mut Stack) {
    let mut problems = Vec::new();
    for (name, service) in &stack.services {
        let Some(map) = service.as_mapping() else {
            problems.push(format!("service `{name}` is not a mapping"));
            continue;
        };
        for key in map.keys().filter_map(Value::as_str) {
            if !SERVICE_KEYS.contains(&key) && !key.starts_with("x-") {
                problems.push(format!(
                    "service `{name}`: `{key}` is no Compose service attribute (misspelled?)"
                ));
            }
        }
        if let Some(healthcheck) = service.get("healthcheck").and_then(Value::as_mapping) {
            for key in healthcheck.keys().filter_map(Value::as_str) {
                if !HEALTHCHECK_KEYS.contains(&key) {
                    problems.push(format!(
                        "service `{name}`: healthcheck `{key}` is no Compose attribute"
                    ));
                }
            }
        }
    }
    stack.problems.extend(problems);
}

/// Image or build on every service; which services run the Agora image, and which binary.
fn check_images_and_commands(inputs: &Inputs, stack: &mut Stack) {
    let binaries = workspace_binaries(inputs);
    for expected in BINARIES {
        if !binaries.contains(expected.binary) {
            stack.problem(format!(
                "the workspace has no binary `{}` (found: {binaries:?})",
                expected.binary
            ));
        }
    }

    // The image built from ./Dockerfile, by whichever services build it.
    let mut agora_images = BTreeSet::new();
    let mut problems = Vec::new();
    for (name, service) in &stack.services {
        let image = service.get("image").and_then(scalar);
        let build = service.get("build");
        if image.as_deref().unwrap_or_default().is_empty() && build.is_none() {
            problems.push(format!("service `{name}` has neither an image nor a build"));
        }
        if let Some(build) = build {
            let (context, dockerfile) = match build {
                Value::Mapping(_) => (
                    build.get("context").and_then(scalar).unwrap_or(".".into()),
                    build
                        .get("dockerfile")
                        .and_then(scalar)
                        .unwrap_or("Dockerfile".into()),
                ),
                other => (scalar(other).unwrap_or_default(), "Dockerfile".into()),
            };
            let context = context.trim_start_matches("./").trim_end_matches('/');
            let path = if context.is_empty() || context == "." {
                dockerfile.clone()
            } else {
                format!("{context}/{dockerfile}")
            };
            if !inputs.exists(&path) {
                problems.push(format!(
                    "service `{name}` builds from {path}, which is missing"
                ));
            }
            if path == "Dockerfile" {
                match &image {
                    Some(image) if !image.is_empty() => {
                        agora_images.insert(image.clone());
                    }
                    _ => problems.push(format!(
                        "service `{name}` builds the Agora image without naming it (`image:`), \
                         so the other services cannot share it"
                    )),
                }
            }
        }
    }
    if agora_images.len() != 1 {
        problems.push(format!(
            "exactly one image should be built from ./Dockerfile and shared, found {agora_images:?}"
        ));
    }

    let mut agora = Vec::new();
    for (name, service) in &stack.services {
        let image = service.get("image").and_then(scalar).unwrap_or_default();
        if !agora_images.contains(&image) {
            continue;
        }
        let entrypoint = words(service.get("entrypoint"));
        let command = words(service.get("command"));
        let program = entrypoint.first().or(command.first()).cloned();
        let Some(program) = program else {
            problems.push(format!(
                "service `{name}` runs the Agora image without a `command` naming the binary"
            ));
            continue;
        };
        let program = program.rsplit('/').next().unwrap_or_default().to_owned();
        if !binaries.contains(&program) || binary_config(&program).is_none() {
            problems.push(format!(
                "service `{name}` runs `{program}`, which is not an Agora binary \
                 (known: command-api, query-api, projector, agora, relay)"
            ));
            continue;
        }
        // A replica is named after its binary: `command-api-2` runs `command-api`.
        if let Some((base, index)) = name.rsplit_once('-') {
            if index.parse::<u32>().is_ok() && binary_config(base).is_some() && base != program {
                problems.push(format!(
                    "service `{name}` looks like a `{base}` replica but runs `{program}`"
                ));
            }
        }
        if service.get("pull_policy").and_then(scalar).as_deref() == Some("never")
            && !stack.services.values().any(|s| {
                s.get("build").is_some() && s.get("image").and_then(scalar) == Some(image.clone())
            })
        {
            problems.push(format!(
                "service `{name}` never pulls {image} and nothing builds it"
            ));
        }
        agora.push(AgoraService {
            name: name.clone(),
            binary: program,
        });
    }
    for (binary, least) in REPLICATED {
        let count = agora.iter().filter(|s| s.binary == *binary).count();
        if count < *least {
            problems.push(format!(
                "`{binary}` should run as at least {least} replicas, found {count}"
            ));
        }
    }
    if !agora.iter().any(|s| {
        s.binary == "agora"
            && words(stack.services[&s.name].get("command")).contains(&"migrate".to_owned())
    }) {
        problems.push("no service runs `agora migrate`".into());
    }
    stack.agora = agora;
    stack.problems.extend(problems);
}

/// Variable names against the allow-list, required ones present, shared values coherent.
fn check_environment(stack: &mut Stack) {
    let mut problems = Vec::new();
    let mut secrets = BTreeMap::new();
    let mut prefixes = BTreeMap::new();
    let mut groups = BTreeMap::new();
    for agora in &stack.agora {
        let config = binary_config(&agora.binary).expect("checked above");
        let service = &stack.services[&agora.name];
        let raw = environment_raw(service);
        let env = environment(service);
        for name in raw.keys() {
            if !reads(config, name) {
                problems.push(format!(
                    "service `{}` sets {name}, which `{}` does not read (misspelled?); it reads {:?}",
                    agora.name, agora.binary, config.allowed
                ));
            }
        }
        for required in config.required {
            if env.get(*required).is_none_or(|value| value.is_empty()) {
                problems.push(format!(
                    "service `{}` ({}) needs {required}",
                    agora.name, agora.binary
                ));
            }
        }
        if let Some(secret) = raw.get("AGORA_JWT_SECRET") {
            secrets.insert(agora.name.clone(), secret.clone());
            let required = secret
                .strip_prefix("${")
                .and_then(required_variable)
                .is_some_and(|name| name == "AGORA_JWT_SECRET");
            if !required {
                problems.push(format!(
                    "service `{}`: AGORA_JWT_SECRET must be required from the environment \
                     (`${{AGORA_JWT_SECRET?…}}`), with no default and not written in the file",
                    agora.name
                ));
            }
        }
        if let Some(prefix) = env.get("AGORA_TOPIC_PREFIX") {
            prefixes.insert(agora.name.clone(), prefix.clone());
        }
        if agora.binary == "projector" {
            groups.insert(
                agora.name.clone(),
                env.get("AGORA_PROJECTOR_GROUP")
                    .cloned()
                    .unwrap_or_else(|| "agora-projector".into()),
            );
        }
    }
    let distinct =
        |map: &BTreeMap<String, String>| -> BTreeSet<String> { map.values().cloned().collect() };
    if distinct(&secrets).len() > 1 {
        problems.push(format!(
            "the services disagree on AGORA_JWT_SECRET: {secrets:?}"
        ));
    }
    for agora in &stack.agora {
        if ["command-api", "query-api"].contains(&agora.binary.as_str())
            && !secrets.contains_key(&agora.name)
        {
            problems.push(format!("service `{}` has no AGORA_JWT_SECRET", agora.name));
        }
    }
    // The relay publishes under the prefix the projectors subscribe to (default "agora").
    for agora in &stack.agora {
        let kafka = environment(&stack.services[&agora.name]).contains_key("KAFKA_BROKERS");
        if kafka && !prefixes.contains_key(&agora.name) {
            prefixes.insert(agora.name.clone(), "agora".into());
        }
    }
    if distinct(&prefixes).len() > 1 {
        problems.push(format!(
            "the relays and projectors disagree on AGORA_TOPIC_PREFIX: {prefixes:?}"
        ));
    }
    if distinct(&groups).len() > 1 {
        problems.push(format!(
            "the projector replicas must share one consumer group: {groups:?}"
        ));
    }
    let relays = stack
        .agora
        .iter()
        .filter(|s| {
            (s.binary == "command-api" || s.binary == "relay")
                && environment(&stack.services[&s.name]).contains_key("KAFKA_BROKERS")
        })
        .count();
    let kafka_projectors = stack
        .agora
        .iter()
        .filter(|s| {
            s.binary == "projector"
                && environment(&stack.services[&s.name]).contains_key("KAFKA_BROKERS")
        })
        .count();
    if kafka_projectors > 0 && relays == 0 {
        problems.push(
            "the projectors read Kafka but nothing relays the log to it (no command-api or \
             relay with KAFKA_BROKERS)"
                .into(),
        );
    }
    stack.problems.extend(problems);
}

/// The PostgreSQL servers of the stack: services on the postgres image that are not
/// one-shots (the roles script runs on the same image).
fn postgres_servers(stack: &Stack) -> Vec<(&String, &Value)> {
    stack
        .services
        .iter()
        .filter(|(_, s)| {
            s.get("image")
                .and_then(scalar)
                .is_some_and(|image| image.starts_with("postgres:") || image == "postgres")
                && s.get("restart").and_then(scalar).as_deref() != Some("no")
        })
        .collect()
}

/// The one-shot that runs deploy/postgres/roles.sql: its name, the login roles its script
/// grants group roles to (`GRANT a, b TO login`), and the password it sets for them.
#[derive(Debug, Default)]
struct RolesOneShot {
    service: String,
    logins: BTreeMap<String, BTreeSet<String>>,
    password: Option<String>,
}

impl RolesOneShot {
    fn find(stack: &Stack) -> RolesOneShot {
        let Some((name, service)) = stack.services.iter().find(|(_, service)| {
            volumes(service)
                .iter()
                .any(|(source, _, _)| source.ends_with("deploy/postgres/roles.sql"))
        }) else {
            return RolesOneShot::default();
        };
        let script = words(service.get("command")).join(" ");
        let mut logins: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for statement in script.split(';') {
            let words: Vec<&str> = statement.split_whitespace().collect();
            let Some(to) = words.iter().position(|w| w.eq_ignore_ascii_case("to")) else {
                continue;
            };
            if words
                .first()
                .is_some_and(|w| w.eq_ignore_ascii_case("grant"))
            {
                if let Some(login) = words.get(to + 1) {
                    let groups = words[1..to]
                        .iter()
                        .map(|g| g.trim_end_matches(',').to_owned());
                    logins
                        .entry((*login).to_owned())
                        .or_default()
                        .extend(groups);
                }
            }
        }
        RolesOneShot {
            service: name.clone(),
            logins,
            password: environment(service)
                .get("AGORA_DB_SERVICE_PASSWORD")
                .cloned(),
        }
    }
}

/// DATABASE_URL / READ_DATABASE_URL point at the postgres service, its user and password,
/// and a database that exists (POSTGRES_DB or one created by a mounted init script).
fn check_databases(inputs: &Inputs, stack: &mut Stack) {
    let mut problems = Vec::new();
    let postgres = postgres_servers(stack);
    let Some((pg_name, pg)) = postgres.first().copied() else {
        stack.problem("no postgres service");
        return;
    };
    let pg_env = environment(pg);
    let user = pg_env
        .get("POSTGRES_USER")
        .cloned()
        .unwrap_or_else(|| "postgres".into());
    let password = pg_env.get("POSTGRES_PASSWORD").cloned().unwrap_or_default();
    let roles = RolesOneShot::find(stack);
    // The group roles (deploy/postgres/roles.sql) each long-running service needs.
    let service_roles: BTreeMap<&str, Vec<&str>> = BTreeMap::from([
        ("command-api", vec!["agora_writer"]),
        ("projector", vec!["agora_projector"]),
        ("query-api", vec!["agora_reader", "agora_auditor"]),
    ]);
    let mut databases: BTreeSet<String> = BTreeSet::new();
    databases.insert(
        pg_env
            .get("POSTGRES_DB")
            .cloned()
            .unwrap_or_else(|| user.clone()),
    );
    for (source, target, _) in volumes(pg) {
        if target.trim_end_matches('/') == "/docker-entrypoint-initdb.d" && is_bind_source(&source)
        {
            for file in inputs.list_dir(&source) {
                let sql: String = inputs
                    .read(&file)
                    .unwrap_or_default()
                    .lines()
                    .map(|line| line.split("--").next().unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join("\n");
                for statement in sql.split(';') {
                    let words: Vec<&str> = statement.split_whitespace().collect();
                    if words.len() >= 3
                        && words[0].eq_ignore_ascii_case("create")
                        && words[1].eq_ignore_ascii_case("database")
                    {
                        databases.insert(words[2].trim_matches('"').to_owned());
                    }
                }
            }
        }
    }
    let mut event_stores = BTreeSet::new();
    for agora in &stack.agora {
        let env = environment(&stack.services[&agora.name]);
        for var in [
            "DATABASE_URL",
            "READ_DATABASE_URL",
            "AGORA_SEQUENCER_DATABASE_URL",
        ] {
            let Some(url) = env.get(var) else { continue };
            match parse_postgres_url(url) {
                Some((url_user, url_password, host, port, database)) => {
                    if host != *pg_name {
                        problems.push(format!(
                            "service `{}`: {var} points at host `{host}`, not the `{pg_name}` service",
                            agora.name
                        ));
                    }
                    if port != 5432 {
                        problems.push(format!("service `{}`: {var} uses port {port}", agora.name));
                    }
                    let sequencer = ["agora_sequencer"].to_vec();
                    let groups = if var == "AGORA_SEQUENCER_DATABASE_URL" {
                        Some(&sequencer)
                    } else {
                        service_roles.get(agora.binary.as_str())
                    };
                    match groups {
                        // A service with a role of its own logs in as a login of the
                        // roles one-shot that is in every group the service needs.
                        Some(groups) => {
                            let login_groups = roles.logins.get(&url_user);
                            let has_groups = login_groups
                                .is_some_and(|have| groups.iter().all(|g| have.contains(*g)));
                            if !has_groups {
                                problems.push(format!(
                                    "service `{}`: {var} logs in as {url_user}, which the roles \
                                     one-shot does not make a member of {groups:?}",
                                    agora.name
                                ));
                            }
                            if Some(&url_password) != roles.password.as_ref() {
                                problems.push(format!(
                                    "service `{}`: {var} has password {url_password}, the roles \
                                     one-shot sets {:?}",
                                    agora.name, roles.password
                                ));
                            }
                            let waits = depends_on(&stack.services[&agora.name])
                                .get(&roles.service)
                                .is_some_and(|condition| {
                                    condition == "service_completed_successfully"
                                });
                            if !waits {
                                problems.push(format!(
                                    "service `{}` logs in as {url_user} but does not wait for \
                                     `{}` to complete",
                                    agora.name, roles.service
                                ));
                            }
                        }
                        None => {
                            if url_user != user || url_password != password {
                                problems.push(format!(
                                    "service `{}`: {var} logs in as {url_user}:{url_password}, \
                                     postgres has {user}:{password}",
                                    agora.name
                                ));
                            }
                        }
                    }
                    if !databases.contains(&database) {
                        problems.push(format!(
                            "service `{}`: {var} names database `{database}`, which nothing \
                             creates (known: {databases:?})",
                            agora.name
                        ));
                    }
                    if var != "READ_DATABASE_URL" {
                        event_stores.insert(database);
                    }
                }
                None => problems.push(format!(
                    "service `{}`: {var}={url} is not a postgres:// URL",
                    agora.name
                )),
            }
        }
    }
    if event_stores.len() > 1 {
        problems.push(format!(
            "the services disagree on the event store: {event_stores:?}"
        ));
    }
    // Where each user of the read models finds them: READ_DATABASE_URL, else DATABASE_URL.
    let mut read_models: BTreeMap<String, String> = BTreeMap::new();
    for agora in &stack.agora {
        let service = &stack.services[&agora.name];
        let uses_read_models = matches!(agora.binary.as_str(), "query-api" | "projector")
            || words(service.get("command")).contains(&"migrate".to_owned());
        if !uses_read_models {
            continue;
        }
        let env = environment(service);
        if let Some(url) = env.get("READ_DATABASE_URL").or(env.get("DATABASE_URL")) {
            let location = parse_postgres_url(url)
                .map(|(_, _, host, port, database)| format!("{host}:{port}/{database}"))
                .unwrap_or_else(|| url.clone());
            read_models.insert(agora.name.clone(), location);
        }
    }
    if read_models.values().collect::<BTreeSet<_>>().len() > 1 {
        problems.push(format!(
            "the migration, projectors and query APIs disagree on where the read models are \
             (READ_DATABASE_URL, else DATABASE_URL): {read_models:?}"
        ));
    }
    let healthcheck = words(pg.get("healthcheck").and_then(|h| h.get("test")));
    if !healthcheck.iter().any(|w| w.contains("pg_isready")) {
        problems.push(format!(
            "service `{pg_name}` needs a pg_isready healthcheck"
        ));
    }
    if !volumes(pg)
        .iter()
        .any(|(_, target, _)| target.starts_with("/var/lib/postgresql"))
    {
        problems.push(format!("service `{pg_name}` keeps its data in no volume"));
    }
    stack.problems.extend(problems);
}

/// The service running the Kafka broker: the apache/kafka image with its own entrypoint
/// (one-shots running its tools override it).
fn kafka_broker(stack: &Stack) -> Option<String> {
    stack
        .services
        .iter()
        .find(|(_, s)| {
            s.get("image")
                .and_then(scalar)
                .is_some_and(|image| image.starts_with("apache/kafka"))
                && s.get("entrypoint").is_none()
                && s.get("command").is_none()
        })
        .map(|(name, _)| name.clone())
}

/// The stream types of the domain (`pub const STREAM_TYPE: &str = "…";`): with the topic
/// prefix, the topics the relay publishes to and the projectors subscribe to.
fn stream_types(inputs: &Inputs) -> BTreeSet<String> {
    let mut sources = String::new();
    collect_rust_sources(&inputs.root.join("domain/src"), &mut sources);
    sources
        .split("STREAM_TYPE: &str = \"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect()
}

/// A one-shot creating the projectors' topics, if there is one: it creates exactly
/// `{prefix}.{stream type}` for every stream type, with a partition per projector replica at
/// least, after the broker is healthy, and the projectors wait for it.
fn check_topic_creation(inputs: &Inputs, stack: &mut Stack) {
    let mut problems = Vec::new();
    let creators: Vec<String> = stack
        .services
        .iter()
        .filter(|(_, s)| {
            words(s.get("command"))
                .iter()
                .chain(words(s.get("entrypoint")).iter())
                .any(|w| w.contains("kafka-topics"))
        })
        .map(|(name, _)| name.clone())
        .collect();
    let projectors: Vec<&AgoraService> = stack.replicas_of("projector");
    let prefix = projectors
        .first()
        .and_then(|p| {
            environment(&stack.services[&p.name])
                .get("AGORA_TOPIC_PREFIX")
                .cloned()
        })
        .unwrap_or_else(|| "agora".into());
    let expected: BTreeSet<String> = stream_types(inputs)
        .iter()
        .map(|stream_type| format!("{prefix}.{stream_type}"))
        .collect();
    if expected.is_empty() {
        problems.push("domain/src declares no STREAM_TYPE".into());
    }
    let broker = kafka_broker(stack);
    for creator in &creators {
        let service = &stack.services[creator];
        let script = words(service.get("command")).join(" ");
        let tokens: Vec<&str> = script
            .split(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == ';')
            .filter(|t| !t.is_empty())
            .collect();
        let created: BTreeSet<String> = tokens
            .iter()
            .filter(|t| t.starts_with(&format!("{prefix}.")))
            .map(|t| t.to_string())
            .collect();
        if created != expected {
            problems.push(format!(
                "service `{creator}` creates the topics {created:?}, the projectors subscribe to {expected:?}"
            ));
        }
        let partitions = tokens
            .windows(2)
            .find(|pair| pair[0] == "--partitions")
            .and_then(|pair| pair[1].parse::<usize>().ok())
            .unwrap_or(0);
        if partitions < projectors.len() {
            problems.push(format!(
                "service `{creator}` creates {partitions} partition(s) per topic, fewer than the {} projector replicas",
                projectors.len()
            ));
        }
        if let Some(broker) = &broker {
            let bootstrap = format!("{broker}:");
            if !script.contains(&bootstrap) {
                problems.push(format!("service `{creator}` does not talk to `{broker}`"));
            }
            if depends_on(service).get(broker).map(String::as_str) != Some("service_healthy") {
                problems.push(format!(
                    "service `{creator}` should wait for `{broker}` to be healthy"
                ));
            }
        }
        for projector in &projectors {
            let deps = depends_on(&stack.services[&projector.name]);
            if deps.get(creator).map(String::as_str) != Some("service_completed_successfully") {
                problems.push(format!(
                    "service `{}` should wait for `{creator}` (service_completed_successfully)",
                    projector.name
                ));
            }
        }
    }
    stack.problems.extend(problems);
}

/// Kafka in KRaft mode, listeners coherent, and KAFKA_BROKERS pointing at it.
fn check_kafka(stack: &mut Stack) {
    let mut problems = Vec::new();
    for (name, service) in &stack.services {
        let image = service.get("image").and_then(scalar).unwrap_or_default();
        if name.contains("zookeeper") || image.contains("zookeeper") {
            problems.push(format!(
                "service `{name}` is ZooKeeper: Kafka must run in KRaft mode"
            ));
        }
    }
    let Some(kafka_name) = kafka_broker(stack) else {
        stack.problem("no apache/kafka service running the broker");
        return;
    };
    let kafka = &stack.services[&kafka_name];
    let kafka_name = &kafka_name;
    let env = environment(kafka);
    let get = |key: &str| env.get(key).cloned().unwrap_or_default();
    if env.keys().any(|k| k.contains("ZOOKEEPER")) {
        problems.push(format!("service `{kafka_name}` configures ZooKeeper"));
    }
    let roles: BTreeSet<String> = get("KAFKA_PROCESS_ROLES")
        .split(',')
        .map(|r| r.trim().to_owned())
        .collect();
    if !(roles.contains("broker") && roles.contains("controller")) {
        problems.push(format!(
            "service `{kafka_name}`: KAFKA_PROCESS_ROLES must be broker,controller (single-node KRaft)"
        ));
    }
    let node_id = get("KAFKA_NODE_ID");
    if node_id.parse::<u32>().is_err() {
        problems.push(format!(
            "service `{kafka_name}`: KAFKA_NODE_ID must be a number"
        ));
    }
    // listener name → port
    let listeners: BTreeMap<String, u16> = get("KAFKA_LISTENERS")
        .split(',')
        .filter_map(|listener| {
            let (name, address) = listener.trim().split_once("://")?;
            Some((name.to_owned(), host_port(address)?.1))
        })
        .collect();
    let protocol_map: BTreeSet<String> = get("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP")
        .split(',')
        .filter_map(|pair| pair.split_once(':').map(|(name, _)| name.trim().to_owned()))
        .collect();
    for name in listeners.keys() {
        if !protocol_map.contains(name)
            && !["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"].contains(&name.as_str())
        {
            problems.push(format!(
                "service `{kafka_name}`: listener {name} has no security protocol"
            ));
        }
    }
    let controller = get("KAFKA_CONTROLLER_LISTENER_NAMES");
    match listeners.get(&controller) {
        Some(port) => {
            let voter = format!("{node_id}@{kafka_name}:{port}");
            if !get("KAFKA_CONTROLLER_QUORUM_VOTERS")
                .split(',')
                .any(|v| v.trim() == voter)
            {
                problems.push(format!(
                    "service `{kafka_name}`: KAFKA_CONTROLLER_QUORUM_VOTERS should contain {voter}"
                ));
            }
        }
        None => problems.push(format!(
            "service `{kafka_name}`: KAFKA_CONTROLLER_LISTENER_NAMES ({controller:?}) is not a listener"
        )),
    }
    let mut advertised = BTreeSet::new();
    for listener in get("KAFKA_ADVERTISED_LISTENERS").split(',') {
        let Some((name, address)) = listener.trim().split_once("://") else {
            continue;
        };
        match (listeners.get(name), host_port(address)) {
            (Some(port), Some((host, advertised_port))) if *port == advertised_port => {
                advertised.insert(format!("{host}:{advertised_port}"));
            }
            _ => problems.push(format!(
                "service `{kafka_name}`: advertised listener {listener} does not match KAFKA_LISTENERS"
            )),
        }
    }
    for key in [
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
    ] {
        if get(key) != "1" {
            problems.push(format!(
                "service `{kafka_name}`: {key} must be 1 on a single node"
            ));
        }
    }
    if kafka.get("healthcheck").is_none() {
        problems.push(format!("service `{kafka_name}` needs a healthcheck"));
    }
    // Every listener a client reaches authenticates it (SASL); the controller's is the
    // broker's own.
    let protocols: BTreeMap<String, String> = get("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP")
        .split(',')
        .filter_map(|pair| {
            let (name, protocol) = pair.split_once(':')?;
            Some((name.trim().to_owned(), protocol.trim().to_owned()))
        })
        .collect();
    let mut client_protocols = BTreeSet::new();
    for listener in get("KAFKA_ADVERTISED_LISTENERS").split(',') {
        let Some((name, _)) = listener.trim().split_once("://") else {
            continue;
        };
        let protocol = protocols
            .get(name)
            .cloned()
            .unwrap_or_else(|| name.to_owned());
        if name != controller && !protocol.starts_with("SASL_") {
            problems.push(format!(
                "service `{kafka_name}`: listener {name} speaks {protocol}: clients must \
                 authenticate (SASL_PLAINTEXT or SASL_SSL)"
            ));
        }
        client_protocols.insert(protocol);
    }
    let mechanisms: BTreeSet<String> = get("KAFKA_SASL_ENABLED_MECHANISMS")
        .split(',')
        .map(|m| m.trim().to_owned())
        .filter(|m| !m.is_empty())
        .collect();
    let jaas_keys: Vec<&String> = env
        .keys()
        .filter(|k| k.ends_with("_SASL_JAAS_CONFIG"))
        .collect();
    if mechanisms.is_empty() || jaas_keys.is_empty() {
        problems.push(format!(
            "service `{kafka_name}`: SASL needs KAFKA_SASL_ENABLED_MECHANISMS and a \
             listener's JAAS configuration (its users)"
        ));
    }
    for key in &jaas_keys {
        let raw = environment_raw(kafka)
            .get(*key)
            .cloned()
            .unwrap_or_default();
        if !raw.contains("${AGORA_KAFKA_PASSWORD:?") {
            problems.push(format!(
                "service `{kafka_name}`: {key} must take the password from AGORA_KAFKA_PASSWORD \
                 (required, no default), not from the file"
            ));
        }
    }
    for agora in &stack.agora {
        let service = &stack.services[&agora.name];
        let env = environment(service);
        if !env.contains_key("KAFKA_BROKERS") {
            continue;
        }
        let protocol = env
            .get("AGORA_KAFKA_SECURITY_PROTOCOL")
            .cloned()
            .unwrap_or_else(|| "PLAINTEXT".into());
        if !client_protocols.contains(&protocol) {
            problems.push(format!(
                "service `{}`: AGORA_KAFKA_SECURITY_PROTOCOL is {protocol}, the broker's \
                 clients speak {client_protocols:?}",
                agora.name
            ));
        }
        let mechanism = env
            .get("AGORA_KAFKA_SASL_MECHANISM")
            .cloned()
            .unwrap_or_default();
        if !mechanisms.contains(&mechanism) {
            problems.push(format!(
                "service `{}`: AGORA_KAFKA_SASL_MECHANISM is {mechanism:?}, the broker \
                 enables {mechanisms:?}",
                agora.name
            ));
        }
        let password = environment_raw(service)
            .get("AGORA_KAFKA_SASL_PASSWORD")
            .cloned()
            .unwrap_or_default();
        if env
            .get("AGORA_KAFKA_SASL_USERNAME")
            .is_none_or(|u| u.is_empty())
            || !password.contains("${AGORA_KAFKA_PASSWORD:?")
        {
            problems.push(format!(
                "service `{}`: needs AGORA_KAFKA_SASL_USERNAME and AGORA_KAFKA_SASL_PASSWORD \
                 from AGORA_KAFKA_PASSWORD (required, no default)",
                agora.name
            ));
        }
    }
    for agora in &stack.agora {
        let env = environment(&stack.services[&agora.name]);
        let Some(brokers) = env.get("KAFKA_BROKERS") else {
            continue;
        };
        for broker in brokers.split(',') {
            if !advertised.contains(broker.trim()) {
                problems.push(format!(
                    "service `{}`: KAFKA_BROKERS names {broker}, which `{kafka_name}` does not \
                     advertise ({advertised:?})",
                    agora.name
                ));
            }
        }
    }
    stack.problems.extend(problems);
}

/// Whether `service` is the log signer: the command API process that holds the log's key.
fn is_log_signer(service: &Value) -> bool {
    environment(service).contains_key("AGORA_LOG_SIGNING_KEY")
}

/// One process holds the log's signing key: a command API that runs the sequencer as the
/// sequencer's database role, keeps the key in a volume of its own and takes no requests
/// from the load balancer; every other command API runs no sequencer.
fn check_log_signer(stack: &mut Stack) {
    let mut problems = Vec::new();
    let signers: Vec<&AgoraService> = stack
        .agora
        .iter()
        .filter(|s| is_log_signer(&stack.services[&s.name]))
        .collect();
    match signers.as_slice() {
        [signer] => {
            let service = &stack.services[&signer.name];
            let env = environment(service);
            if signer.binary != "command-api" {
                problems.push(format!(
                    "service `{}` holds the log's key but runs {}, not command-api",
                    signer.name, signer.binary
                ));
            }
            if env.get("AGORA_SEQUENCER").is_some_and(|v| v != "true") {
                problems.push(format!(
                    "service `{}` holds the log's key but runs no sequencer",
                    signer.name
                ));
            }
            if !env.contains_key("AGORA_SEQUENCER_DATABASE_URL") {
                problems.push(format!(
                    "service `{}` signs the log over the writer's connection: set \
                     AGORA_SEQUENCER_DATABASE_URL (a role of agora_sequencer)",
                    signer.name
                ));
            }
            let key = env
                .get("AGORA_LOG_SIGNING_KEY")
                .cloned()
                .unwrap_or_default();
            let in_volume = volumes(service).iter().any(|(source, target, read_only)| {
                !is_bind_source(source) && !read_only && key.starts_with(&format!("{target}/"))
            });
            if !in_volume {
                problems.push(format!(
                    "service `{}`: the key {key} must be in a writable named volume (the \
                     signer keeps its last checkpoint beside it)",
                    signer.name
                ));
            }
        }
        [] => problems.push(
            "no service holds the log's signing key (AGORA_LOG_SIGNING_KEY): \
                             nothing signs checkpoints"
                .into(),
        ),
        many => problems.push(format!(
            "the log's signing key is held by {:?}: one process only",
            many.iter().map(|s| &s.name).collect::<Vec<_>>()
        )),
    }
    for agora in stack.replicas_of("command-api") {
        let service = &stack.services[&agora.name];
        let env = environment(service);
        if !is_log_signer(service) && env.get("AGORA_SEQUENCER").is_none_or(|v| v != "false") {
            problems.push(format!(
                "service `{}` runs a sequencer without the key: set AGORA_SEQUENCER=false \
                 (only the log signer sequences)",
                agora.name
            ));
        }
    }
    stack.problems.extend(problems);
}

/// Servers listen on 0.0.0.0, on the port their healthcheck probes and they `expose`.
fn check_listen_addresses_and_healthchecks(stack: &mut Stack) {
    let mut problems = Vec::new();
    for agora in &stack.agora {
        let service = &stack.services[&agora.name];
        let config = binary_config(&agora.binary).expect("checked above");
        let Some(listen_var) = config.listen_var else {
            continue;
        };
        let env = environment(service);
        let Some(address) = env.get(listen_var) else {
            continue; // reported as missing by check_environment
        };
        let port = match host_port(address) {
            Some((host, port)) if host == "0.0.0.0" => port,
            _ => {
                problems.push(format!(
                    "service `{}`: {listen_var}={address} must bind 0.0.0.0:<port> to be \
                     reachable from other containers",
                    agora.name
                ));
                continue;
            }
        };
        let test = words(service.get("healthcheck").and_then(|h| h.get("test"))).join(" ");
        let probes = [
            format!("127.0.0.1:{port}/readyz"),
            format!("localhost:{port}/readyz"),
            format!("127.0.0.1:{port}/healthz"),
            format!("localhost:{port}/healthz"),
        ];
        if !probes.iter().any(|probe| test.contains(probe.as_str())) {
            problems.push(format!(
                "service `{}` needs a healthcheck on its own /readyz or /healthz (port {port}), has {test:?}",
                agora.name
            ));
        }
        if let Some(exposed) = service.get("expose").and_then(Value::as_sequence) {
            let exposed: Vec<String> = exposed.iter().filter_map(scalar).collect();
            if !exposed.contains(&port.to_string()) {
                problems.push(format!(
                    "service `{}` exposes {exposed:?} but listens on {port}",
                    agora.name
                ));
            }
        }
    }
    stack.problems.extend(problems);
}

/// Targets exist; `service_healthy` targets have a healthcheck; `service_completed_successfully`
/// targets are one-shots; the graph has no cycle; the Agora services wait for their
/// dependencies.
fn check_depends_on(stack: &mut Stack) {
    let mut problems = Vec::new();
    for (name, service) in &stack.services {
        for (target, condition) in depends_on(service) {
            let Some(target_service) = stack.service(&target) else {
                problems.push(format!(
                    "service `{name}` depends on `{target}`, which does not exist"
                ));
                continue;
            };
            match condition.as_str() {
                "service_started" => {}
                "service_healthy" => {
                    if target_service.get("healthcheck").is_none() {
                        problems.push(format!(
                            "service `{name}` waits for `{target}` to be healthy, but it has no healthcheck"
                        ));
                    }
                }
                "service_completed_successfully" => {
                    let restart = target_service
                        .get("restart")
                        .and_then(scalar)
                        .unwrap_or_else(|| "no".into());
                    if restart != "no" && restart != "on-failure" {
                        problems.push(format!(
                            "service `{name}` waits for `{target}` to complete, but it restarts ({restart})"
                        ));
                    }
                }
                other => problems.push(format!(
                    "service `{name}`: unknown depends_on condition `{other}` for `{target}`"
                )),
            }
        }
    }
    // No cycle: repeatedly remove services whose dependencies are all removed.
    let mut remaining: BTreeMap<String, BTreeSet<String>> = stack
        .services
        .iter()
        .map(|(name, service)| (name.clone(), depends_on(service).into_keys().collect()))
        .collect();
    loop {
        let ready: Vec<String> = remaining
            .iter()
            .filter(|(_, deps)| deps.iter().all(|d| !remaining.contains_key(d)))
            .map(|(name, _)| name.clone())
            .collect();
        if ready.is_empty() {
            break;
        }
        for name in ready {
            remaining.remove(&name);
        }
    }
    if !remaining.is_empty() {
        problems.push(format!(
            "depends_on has a cycle among {:?}",
            remaining.keys().collect::<Vec<_>>()
        ));
    }
    // What the Agora services need before they start.
    let migrate: Vec<String> = stack
        .agora
        .iter()
        .filter(|s| words(stack.services[&s.name].get("command")).contains(&"migrate".to_owned()))
        .map(|s| s.name.clone())
        .collect();
    let postgres = postgres_servers(stack)
        .first()
        .map(|(name, _)| (*name).clone());
    let kafka = kafka_broker(stack);
    for agora in &stack.agora {
        let service = &stack.services[&agora.name];
        let deps = depends_on(service);
        let env = environment(service);
        let is_migrate = migrate.contains(&agora.name);
        if !is_migrate
            && !migrate
                .iter()
                .any(|m| deps.get(m).map(String::as_str) == Some("service_completed_successfully"))
        {
            problems.push(format!(
                "service `{}` should depend on the migration (condition: service_completed_successfully)",
                agora.name
            ));
        }
        if is_migrate || env.contains_key("DATABASE_URL") {
            if let Some(postgres) = &postgres {
                let direct = deps.get(postgres).map(String::as_str) == Some("service_healthy");
                // Waiting for the migration waits for Postgres too.
                let via_migrate = !is_migrate && migrate.iter().any(|m| deps.contains_key(m));
                if !(direct || via_migrate) {
                    problems.push(format!(
                        "service `{}` uses Postgres but does not wait for `{postgres}` to be healthy",
                        agora.name
                    ));
                }
            }
        }
        if env.contains_key("KAFKA_BROKERS") {
            if let Some(kafka) = &kafka {
                if deps.get(kafka).map(String::as_str) != Some("service_healthy") {
                    problems.push(format!(
                        "service `{}` uses Kafka but does not wait for `{kafka}` to be healthy",
                        agora.name
                    ));
                }
            }
        }
    }
    stack.problems.extend(problems);
}

/// Each load balancer: nginx, publishes its port, mounts its config read-only, and the
/// config's upstream lists exactly the replicas of its API, on the port they listen on.
fn check_load_balancers(inputs: &Inputs, stack: &mut Stack) {
    let mut problems = Vec::new();
    for (binary, lb_name, published) in LOAD_BALANCED {
        let Some(lb) = stack.service(lb_name) else {
            problems.push(format!("no load balancer service `{lb_name}` for {binary}"));
            continue;
        };
        let image = lb.get("image").and_then(scalar).unwrap_or_default();
        if !image.starts_with("nginx") {
            problems.push(format!("`{lb_name}` should run nginx, runs {image:?}"));
        }
        let ports = published_ports(lb);
        let Some(container_port) = ports
            .iter()
            .find(|(host, _)| *host == Some(*published))
            .map(|(_, container)| *container)
        else {
            problems.push(format!(
                "`{lb_name}` should publish port {published}, has {ports:?}"
            ));
            continue;
        };
        let configs: Vec<(String, bool)> = volumes(lb)
            .into_iter()
            .filter(|(source, target, _)| {
                is_bind_source(source) && target.starts_with("/etc/nginx/")
            })
            .map(|(source, _, read_only)| (source, read_only))
            .collect();
        if configs.is_empty() {
            problems.push(format!("`{lb_name}` mounts no nginx config"));
        }
        // The log signer runs the command API's binary but takes no requests.
        let replicas: BTreeMap<String, Option<u16>> = stack
            .replicas_of(binary)
            .into_iter()
            .filter(|replica| !is_log_signer(&stack.services[&replica.name]))
            .map(|replica| {
                let config = binary_config(binary).expect("known binary");
                let env = environment(&stack.services[&replica.name]);
                let port = config
                    .listen_var
                    .and_then(|var| env.get(var))
                    .and_then(|address| host_port(address))
                    .map(|(_, port)| port);
                (replica.name.clone(), port)
            })
            .collect();
        for (source, read_only) in configs {
            if !source.trim_start_matches("./").starts_with("deploy/nginx/") {
                problems.push(format!(
                    "`{lb_name}` mounts {source}, not a file of deploy/nginx"
                ));
            }
            if !read_only {
                problems.push(format!("`{lb_name}` should mount {source} read-only (:ro)"));
            }
            let Some(text) = inputs.read(&source) else {
                problems.push(format!("`{lb_name}` mounts {source}, which is missing"));
                continue;
            };
            let nginx = parse_nginx(&text);
            if !nginx.listen_ports.contains(&container_port) {
                problems.push(format!(
                    "{source} listens on {:?}, but `{lb_name}` publishes container port {container_port}",
                    nginx.listen_ports
                ));
            }
            for target in &nginx.proxy_passes {
                if !nginx.upstreams.contains_key(target) {
                    problems.push(format!(
                        "{source}: proxy_pass to `{target}`, which is no upstream of the file"
                    ));
                }
            }
            if nginx.upstreams.len() != 1 {
                problems.push(format!(
                    "{source} should define one upstream (the {binary} replicas), has {:?}",
                    nginx.upstreams.keys().collect::<Vec<_>>()
                ));
            }
            for (upstream, servers) in &nginx.upstreams {
                let named: BTreeSet<&String> = servers.iter().map(|(host, _)| host).collect();
                let expected: BTreeSet<&String> = replicas.keys().collect();
                if named != expected {
                    problems.push(format!(
                        "{source}: upstream `{upstream}` names {named:?}, the {binary} replicas are {expected:?}"
                    ));
                }
                for (host, port) in servers {
                    if let Some(Some(listening)) = replicas.get(host) {
                        if listening != port {
                            problems.push(format!(
                                "{source}: upstream `{upstream}` sends to {host}:{port}, which listens on {listening}"
                            ));
                        }
                    }
                }
            }
        }
        let deps = depends_on(lb);
        for replica in replicas.keys() {
            if !deps.contains_key(replica) {
                problems.push(format!("`{lb_name}` should depend on `{replica}`"));
            }
        }
    }
    // Only the load balancers publish ports to the network; the operators' consoles
    // (Prometheus, Grafana) are published on the host's loopback only. Host ports are
    // published once.
    let mut seen = BTreeMap::new();
    for (name, service) in &stack.services {
        let load_balancer = LOAD_BALANCED.iter().any(|(_, lb, _)| lb == name);
        if !load_balancer && !published_ports(service).is_empty() && !loopback_only(service) {
            problems.push(format!(
                "service `{name}` publishes ports: only the load balancers may"
            ));
        }
        for (host, _) in published_ports(service) {
            if let Some(host) = host {
                if let Some(other) = seen.insert(host, name.clone()) {
                    problems.push(format!(
                        "host port {host} is published by both `{other}` and `{name}`"
                    ));
                }
            }
        }
    }
    stack.problems.extend(problems);
}

/// Named volumes are declared; bind-mounted files exist.
/// TLS ends at the load balancers: each one's published port listens with `ssl`, its
/// certificate and key are named, they live in a volume the load balancer mounts, and a
/// one-shot it waits for writes that volume (making a certificate when none is there).
fn check_tls_at_load_balancers(inputs: &Inputs, stack: &mut Stack) {
    let mut problems = Vec::new();
    for (_, lb_name, published) in LOAD_BALANCED {
        let Some(lb) = stack.service(lb_name) else {
            continue;
        };
        let Some(container_port) = published_ports(lb)
            .iter()
            .find(|(host, _)| *host == Some(*published))
            .map(|(_, container)| *container)
        else {
            continue;
        };
        let mounts = volumes(lb);
        let Some(text) = mounts
            .iter()
            .find(|(source, target, _)| is_bind_source(source) && target.starts_with("/etc/nginx/"))
            .and_then(|(source, _, _)| inputs.read(source))
        else {
            continue;
        };
        let statements: Vec<Vec<&str>> = text
            .lines()
            .map(|line| line.split('#').next().unwrap_or_default())
            .flat_map(|line| line.split(';'))
            .map(|statement| statement.split_whitespace().collect())
            .collect();
        let listens_with_tls = statements.iter().any(|words| {
            words.first() == Some(&"listen")
                && words.get(1).and_then(|address| address.rsplit(':').next())
                    == Some(container_port.to_string().as_str())
                && words.contains(&"ssl")
        });
        if !listens_with_tls {
            problems.push(format!(
                "`{lb_name}` publishes container port {container_port} without TLS (`listen {container_port} ssl`)"
            ));
        }
        for directive in ["ssl_certificate", "ssl_certificate_key"] {
            let Some(path) = statements
                .iter()
                .find(|words| words.first() == Some(&directive))
                .and_then(|words| words.get(1))
            else {
                problems.push(format!("`{lb_name}`'s nginx config names no {directive}"));
                continue;
            };
            let Some((volume, _, _)) = mounts.iter().find(|(source, target, _)| {
                !is_bind_source(source) && path.starts_with(&format!("{target}/"))
            }) else {
                problems.push(format!(
                    "`{lb_name}`: {directive} {path} is in no volume the load balancer mounts"
                ));
                continue;
            };
            let made_by = depends_on(lb).into_iter().any(|(target, condition)| {
                condition == "service_completed_successfully"
                    && stack.service(&target).is_some_and(|maker| {
                        volumes(maker)
                            .iter()
                            .any(|(source, _, read_only)| source == volume && !read_only)
                    })
            });
            if !made_by {
                problems.push(format!(
                    "`{lb_name}` waits for no one-shot that writes the `{volume}` volume ({directive})"
                ));
            }
        }
    }
    stack.problems.extend(problems);
}

fn check_volumes(inputs: &Inputs, stack: &mut Stack) {
    let mut problems = Vec::new();
    for (name, service) in &stack.services {
        for (source, _, _) in volumes(service) {
            if is_bind_source(&source) {
                if source.starts_with("./") && !inputs.exists(&source) {
                    problems.push(format!(
                        "service `{name}` mounts {source}, which is missing"
                    ));
                }
            } else if !stack.top_volumes.contains(&source) {
                problems.push(format!(
                    "service `{name}` uses volume `{source}`, which `volumes:` does not declare"
                ));
            }
        }
    }
    stack.problems.extend(problems);
}

/// The Dockerfile builds and installs every binary the compose file runs, and its runtime
/// stage has what the healthchecks use.
fn check_dockerfile(inputs: &Inputs, stack: &mut Stack) {
    let mut problems = Vec::new();
    let Some(text) = inputs.read("Dockerfile") else {
        stack.problem("Dockerfile is missing");
        return;
    };
    let stages = parse_dockerfile(&text);
    if stages.len() < 2 {
        problems.push(format!(
            "the Dockerfile should be multi-stage (builder + runtime), has {} stage(s)",
            stages.len()
        ));
    }
    let needed: BTreeSet<String> = stack.agora.iter().map(|s| s.binary.clone()).collect();

    // The builder: the stage whose RUN calls `cargo build`.
    let builder = stages.iter().find(|stage| {
        stage
            .instructions
            .iter()
            .any(|i| i.starts_with("RUN") && i.contains("cargo build"))
    });
    let Some(builder) = builder else {
        stack.problem("no Dockerfile stage runs `cargo build`");
        return;
    };
    let build = builder
        .instructions
        .iter()
        .find(|i| i.starts_with("RUN") && i.contains("cargo build"))
        .expect("found above");
    let build_words: Vec<&str> = build.split_whitespace().collect();
    let built: BTreeSet<String> = build_words
        .windows(2)
        .filter(|pair| pair[0] == "--bin")
        .map(|pair| pair[1].to_owned())
        .collect();
    let builds_all = build_words.contains(&"--bins") || build_words.contains(&"--workspace");
    for flag in ["--release", "--locked"] {
        if !build_words.contains(&flag) {
            problems.push(format!("the Dockerfile's cargo build should pass {flag}"));
        }
    }
    if !build.contains("--mount=type=cache") {
        problems.push("the Dockerfile's cargo build should use cache mounts".into());
    }
    for binary in &needed {
        if !builds_all && !built.contains(binary) {
            problems.push(format!(
                "docker-compose.yml runs `{binary}`, which the Dockerfile does not build (--bin {binary})"
            ));
        }
        let copied = format!("target/release/{binary}");
        if !build.contains(&copied) {
            problems.push(format!(
                "the Dockerfile builds `{binary}` but does not copy {copied} out of the cache mount"
            ));
        }
    }

    // The runtime: the last stage, copying from the builder into /usr/local/bin.
    let runtime = stages.last().expect("at least one stage");
    let builder_name = builder.name.clone().unwrap_or_default();
    if std::ptr::eq(runtime, builder) {
        problems.push("the last Dockerfile stage should be a slim runtime, not the builder".into());
    }
    let copies_binaries = runtime.instructions.iter().any(|i| {
        i.starts_with("COPY")
            && i.contains(&format!("--from={builder_name}"))
            && i.trim_end().ends_with("/usr/local/bin/")
    });
    if !copies_binaries {
        problems.push(format!(
            "the runtime stage should COPY --from={builder_name} the binaries into /usr/local/bin/"
        ));
    }
    let release = |base: &str| {
        ["bookworm", "trixie", "bullseye"]
            .into_iter()
            .find(|release| base.contains(release))
    };
    if release(&builder.base).is_none() || release(&builder.base) != release(&runtime.base) {
        problems.push(format!(
            "builder ({}) and runtime ({}) should be the same Debian release (glibc)",
            builder.base, runtime.base
        ));
    }
    let installs = runtime
        .instructions
        .iter()
        .filter(|i| i.starts_with("RUN") && i.contains("apt-get install"))
        .cloned()
        .collect::<Vec<_>>()
        .join(" ");
    let healthchecks_use_curl = stack.agora.iter().any(|s| {
        words(
            stack.services[&s.name]
                .get("healthcheck")
                .and_then(|h| h.get("test")),
        )
        .iter()
        .any(|w| w == "curl")
    });
    if healthchecks_use_curl && !installs.split_whitespace().any(|w| w == "curl") {
        problems.push("the healthchecks run curl, which the runtime stage does not install".into());
    }
    match runtime
        .instructions
        .iter()
        .rev()
        .find(|i| i.starts_with("USER"))
        .and_then(|i| i.split_whitespace().nth(1))
    {
        Some(user) if !user.starts_with("root") && !user.starts_with("0") => {}
        other => problems.push(format!(
            "the runtime stage should run as a non-root USER, has {other:?}"
        )),
    }
    stack.problems.extend(problems);
}

// -------------------------------------------------------------------------------------------
// Tests.
// -------------------------------------------------------------------------------------------

fn report(problems: &[String]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_compose_stack_is_wired_consistently() {
    let problems = check(&Inputs::new());
    assert!(
        problems.is_empty(),
        "docker-compose.yml / Dockerfile / deploy/ disagree:\n{}",
        report(&problems)
    );
}

#[test]
fn the_allow_list_mirrors_the_binaries_configuration() {
    // Each allowed variable is read by the binary's sources, so a renamed or dropped
    // setting in a crate fails here instead of silently being ignored in the stack.
    let inputs = Inputs::new();
    let mut problems = Vec::new();
    for config in BINARIES {
        let mut sources = String::new();
        for source in config.sources {
            let path = inputs.root.join(source);
            collect_rust_sources(&path, &mut sources);
            if sources.is_empty() {
                problems.push(format!("{source}: no Rust sources found"));
            }
        }
        for var in config.allowed.iter().chain(config.required) {
            if IMPLICIT_VARIABLES.contains(var) {
                continue;
            }
            if !sources.contains(&format!("\"{var}\"")) {
                problems.push(format!(
                    "`{}` allows {var}, which its sources ({:?}) never read",
                    config.binary, config.sources
                ));
            }
        }
        for var in config.required {
            assert!(
                config.allowed.contains(var),
                "{var} required but not allowed"
            );
        }
    }
    assert!(problems.is_empty(), "{}", report(&problems));
}

fn collect_rust_sources(path: &Path, out: &mut String) {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        entries.sort();
        for entry in entries {
            collect_rust_sources(&entry, out);
        }
    } else if path.extension().is_some_and(|ext| ext == "rs") {
        out.push_str(&std::fs::read_to_string(path).unwrap_or_default());
        out.push('\n');
    }
}

/// Each mutation: (file, text to find, replacement, a word the report must mention).
const MUTATIONS: &[(&str, &str, &str, &str)] = &[
    // Kafka without authentication.
    (
        "docker-compose.yml",
        "CLIENT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
        "CLIENT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "clients must authenticate",
    ),
    // A client that does not speak SASL to it.
    (
        "docker-compose.yml",
        "AGORA_KAFKA_SECURITY_PROTOCOL: SASL_PLAINTEXT",
        "AGORA_KAFKA_SECURITY_PROTOCOL: PLAINTEXT",
        "AGORA_KAFKA_SECURITY_PROTOCOL is PLAINTEXT",
    ),
    // Kafka's password written in the file.
    (
        "docker-compose.yml",
        "AGORA_KAFKA_SASL_PASSWORD: ${AGORA_KAFKA_PASSWORD:?set AGORA_KAFKA_PASSWORD (Kafka's SASL password)}",
        "AGORA_KAFKA_SASL_PASSWORD: agora-secret",
        "AGORA_KAFKA_SASL_PASSWORD",
    ),
    // A replica behind the load balancer that sequences (and would sign without the key).
    (
        "docker-compose.yml",
        "      AGORA_SEQUENCER: \"false\"\n",
        "",
        "set AGORA_SEQUENCER=false",
    ),
    // The signer writing the tree as the writer.
    (
        "docker-compose.yml",
        "      <<: [*log-env, *command-api-db-env, *sequencer-db-env, *auth-env, *provider-env]",
        "      <<: [*log-env, *command-api-db-env, *auth-env, *provider-env]",
        "AGORA_SEQUENCER_DATABASE_URL",
    ),
    // The sequencer's login not granted the sequencer's role.
    (
        "docker-compose.yml",
        "        GRANT agora_sequencer TO agora_log_signer;\n",
        "        GRANT agora_writer TO agora_log_signer;\n",
        "agora_sequencer",
    ),
    // An operators' console published to the network instead of the host's loopback.
    (
        "docker-compose.yml",
        "\"127.0.0.1:${AGORA_GRAFANA_PORT:-3000}:3000\"",
        "\"${AGORA_GRAFANA_PORT:-3000}:3000\"",
        "only the load balancers may",
    ),
    // A load balancer that serves plain HTTP to clients.
    (
        "deploy/nginx/command-api.conf",
        "listen 8080 ssl;",
        "listen 8080;",
        "without TLS",
    ),
    // Nobody makes the certificate the load balancer waits for.
    (
        "docker-compose.yml",
        "      - tls:/tls\n",
        "",
        "waits for no one-shot",
    ),
    // A misspelled variable name in a shared fragment.
    (
        "docker-compose.yml",
        "KAFKA_BROKERS: kafka:9092",
        "KAFKA_BROKER: kafka:9092",
        "KAFKA_BROKER",
    ),
    // A misspelled listen variable.
    (
        "docker-compose.yml",
        "QUERY_API_ADDR: 0.0.0.0:8081",
        "QUERY_API_ADR: 0.0.0.0:8081",
        "QUERY_API_ADR",
    ),
    // A listen address on loopback.
    (
        "docker-compose.yml",
        "COMMAND_API_ADDR: 0.0.0.0:8080",
        "COMMAND_API_ADDR: 127.0.0.1:8080",
        "0.0.0.0",
    ),
    // A port the load balancer does not send to.
    (
        "docker-compose.yml",
        "QUERY_API_ADDR: 0.0.0.0:8081",
        "QUERY_API_ADDR: 0.0.0.0:8091",
        "8091",
    ),
    // A projector writing its read models where the query APIs do not read them.
    (
        "docker-compose.yml",
        "agora_projector_service:${AGORA_DB_SERVICE_PASSWORD:?set AGORA_DB_SERVICE_PASSWORD (the services' database password)}@postgres:5432/agora_read",
        "agora_projector_service:${AGORA_DB_SERVICE_PASSWORD:?set AGORA_DB_SERVICE_PASSWORD (the services' database password)}@postgres:5432/agora",
        "read models",
    ),
    // The command API logging in as a role that cannot append (the query API's).
    (
        "docker-compose.yml",
        "DATABASE_URL: postgres://agora_command_api:",
        "DATABASE_URL: postgres://agora_query_api:",
        "agora_writer",
    ),
    // A service role the roles one-shot never makes.
    (
        "docker-compose.yml",
        "GRANT agora_projector TO agora_projector_service;",
        "",
        "agora_projector",
    ),
    // A misspelled service attribute.
    (
        "docker-compose.yml",
        "    healthcheck:\n      test: [\"CMD\", \"wget\"",
        "    healtcheck:\n      test: [\"CMD\", \"wget\"",
        "healtcheck",
    ),
    // A misspelled topic.
    (
        "docker-compose.yml",
        "for topic in agora.product agora.order",
        "for topic in agora.prodcut agora.order",
        "agora.prodcut",
    ),
    // A misspelled binary.
    (
        "docker-compose.yml",
        "command: [\"projector\"]",
        "command: [\"projecter\"]",
        "projecter",
    ),
    // A misspelled dependency.
    (
        "docker-compose.yml",
        "      kafka:\n        condition: service_healthy",
        "      kafak:\n        condition: service_healthy",
        "kafak",
    ),
    // A misspelled service name (the load balancer no longer matches it).
    (
        "docker-compose.yml",
        "  query-api-2:\n",
        "  query-api2:\n",
        "query-api",
    ),
    // A misspelled database.
    (
        "docker-compose.yml",
        "@postgres:5432/agora_read",
        "@postgres:5432/agora_reed",
        "agora_reed",
    ),
    // A misspelled broker host.
    (
        "docker-compose.yml",
        "KAFKA_BROKERS: kafka:9092",
        "KAFKA_BROKERS: kafka:9029",
        "kafka:9029",
    ),
    // ZooKeeper mode.
    (
        "docker-compose.yml",
        "KAFKA_PROCESS_ROLES: broker,controller",
        "KAFKA_PROCESS_ROLES: broker",
        "KAFKA_PROCESS_ROLES",
    ),
    // The secret written in the file.
    (
        "docker-compose.yml",
        "AGORA_JWT_SECRET: ${AGORA_JWT_SECRET?",
        "AGORA_JWT_SECRET: hunter2${UNUSED?",
        "AGORA_JWT_SECRET",
    ),
    // A default secret (anyone could mint tokens for a stack started without one).
    (
        "docker-compose.yml",
        "AGORA_JWT_SECRET: ${AGORA_JWT_SECRET?",
        "AGORA_JWT_SECRET: ${AGORA_JWT_SECRET:-change-me-dev-secret}${UNUSED?",
        "AGORA_JWT_SECRET",
    ),
    // An API replica published past its load balancer.
    (
        "docker-compose.yml",
        "  command-api-1:\n",
        "  command-api-1:\n    ports: [\"18080:8080\"]\n",
        "only the load balancers",
    ),
    // A misspelled replica in an nginx upstream.
    (
        "deploy/nginx/command-api.conf",
        "server command-api-2:8080",
        "server command-api-3:8080",
        "command-api-3",
    ),
    // A wrong replica port in an nginx upstream.
    (
        "deploy/nginx/query-api.conf",
        "server query-api-1:8081",
        "server query-api-1:8082",
        "8082",
    ),
    // A binary the Dockerfile no longer builds.
    ("Dockerfile", "--bin projector", "", "projector"),
    // A runtime without curl.
    (
        "Dockerfile",
        "ca-certificates curl",
        "ca-certificates",
        "curl",
    ),
];

#[test]
fn misspellings_and_wrong_wiring_are_caught() {
    assert!(
        check(&Inputs::new()).is_empty(),
        "the unmodified files must pass first"
    );
    for (file, from, to, mention) in MUTATIONS {
        let mut inputs = Inputs::new();
        inputs.mutate(file, from, to);
        let problems = check(&inputs);
        assert!(
            !problems.is_empty(),
            "{file}: replacing {from:?} with {to:?} went unnoticed"
        );
        assert!(
            problems.iter().any(|p| p.contains(mention)),
            "{file}: replacing {from:?} with {to:?} was caught, but no problem mentions {mention:?}:\n{}",
            report(&problems)
        );
    }
}
