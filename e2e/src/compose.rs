//! Small parsers for the compose-file checks (e2e/tests/compose.rs): Compose interpolation
//! and values (`environment`, `depends_on`, volumes, ports), PostgreSQL URLs, nginx configs
//! and Dockerfiles. Each reads only as much of its format as the checks need.

use std::collections::BTreeMap;

use serde_yaml::Value;

/// Compose interpolation with every variable unset: `${VAR:-default}` and `${VAR-default}`
/// give the default, `${VAR}` and `$VAR` give "", `$$` is a literal `$`. A required
/// variable (`${VAR?message}`, `${VAR:?message}`) gives `<VAR>`: the user must set it.
pub fn interpolate(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(index) = rest.find('$') {
        out.push_str(&rest[..index]);
        let after = &rest[index + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(braced) = after.strip_prefix('{') {
            let end = braced.find('}').unwrap_or(braced.len());
            let inner = &braced[..end];
            if let Some(name) = required_variable(inner) {
                out.push_str(&format!("<{name}>"));
            } else if let Some((_, default)) = inner.split_once(":-") {
                out.push_str(default);
            } else if let Some((_, default)) = inner.split_once('-') {
                out.push_str(default);
            }
            rest = braced.get(end + 1..).unwrap_or("");
        } else {
            let name_len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            rest = &after[name_len..];
        }
    }
    out.push_str(rest);
    out
}

/// `VAR` when `inner` (what is between `${` and `}`) is `VAR?message` or `VAR:?message`.
pub fn required_variable(inner: &str) -> Option<&str> {
    let name_len = inner
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(inner.len());
    let (name, rest) = inner.split_at(name_len);
    (rest.starts_with('?') || rest.starts_with(":?")).then_some(name)
}

/// A scalar as compose sees it (numbers and booleans become strings), interpolated.
pub fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(interpolate(text)),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

/// A string or a list of strings (`command`, `entrypoint`, healthcheck `test`) as words.
pub fn words(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Sequence(items)) => items.iter().filter_map(scalar).collect(),
        Some(value) => scalar(value)
            .map(|text| text.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default(),
        None => Vec::new(),
    }
}

/// `environment` in either form, names → raw (uninterpolated) values.
pub fn environment_raw(service: &Value) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    match service.get("environment") {
        Some(Value::Mapping(map)) => {
            for (key, value) in map {
                let key = key.as_str().unwrap_or_default().to_owned();
                let raw = match value {
                    Value::String(text) => text.clone(),
                    other => scalar(other).unwrap_or_default(),
                };
                env.insert(key, raw);
            }
        }
        Some(Value::Sequence(items)) => {
            for item in items.iter().filter_map(Value::as_str) {
                let (key, value) = item.split_once('=').unwrap_or((item, ""));
                env.insert(key.to_owned(), value.to_owned());
            }
        }
        _ => {}
    }
    env
}

pub fn environment(service: &Value) -> BTreeMap<String, String> {
    environment_raw(service)
        .into_iter()
        .map(|(key, value)| (key, interpolate(&value)))
        .collect()
}

/// `depends_on` in either form: target → condition.
pub fn depends_on(service: &Value) -> BTreeMap<String, String> {
    match service.get("depends_on") {
        Some(Value::Sequence(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(|name| (name.to_owned(), "service_started".to_owned()))
            .collect(),
        Some(Value::Mapping(map)) => map
            .iter()
            .map(|(key, value)| {
                let condition = value
                    .get("condition")
                    .and_then(Value::as_str)
                    .unwrap_or("service_started");
                (
                    key.as_str().unwrap_or_default().to_owned(),
                    condition.to_owned(),
                )
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// A volume: (source, target, read-only). Short and long syntax.
pub fn volumes(service: &Value) -> Vec<(String, String, bool)> {
    let Some(items) = service.get("volumes").and_then(Value::as_sequence) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| match item {
            Value::String(text) => {
                let text = interpolate(text);
                let parts: Vec<&str> = text.split(':').collect();
                match parts.as_slice() {
                    [source, target] => Some((source.to_string(), target.to_string(), false)),
                    [source, target, mode] => Some((
                        source.to_string(),
                        target.to_string(),
                        mode.split(',').any(|m| m == "ro"),
                    )),
                    _ => None,
                }
            }
            Value::Mapping(_) => Some((
                item.get("source").and_then(scalar).unwrap_or_default(),
                item.get("target").and_then(scalar).unwrap_or_default(),
                item.get("read_only")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            )),
            _ => None,
        })
        .collect()
}

pub fn is_bind_source(source: &str) -> bool {
    source.starts_with('.') || source.starts_with('/') || source.starts_with('~')
}

/// Published ports: (host port, container port). Short and long syntax.
/// Whether every port `service` publishes is bound to the host's loopback
/// (`127.0.0.1:HOST:CONTAINER`, or `host_ip: 127.0.0.1`).
pub fn loopback_only(service: &Value) -> bool {
    let Some(items) = service.get("ports").and_then(Value::as_sequence) else {
        return true;
    };
    items.iter().all(|item| match item {
        Value::Mapping(_) => item.get("host_ip").and_then(scalar).as_deref() == Some("127.0.0.1"),
        other => scalar(other).is_some_and(|text| text.starts_with("127.0.0.1:")),
    })
}

pub fn published_ports(service: &Value) -> Vec<(Option<u16>, u16)> {
    let Some(items) = service.get("ports").and_then(Value::as_sequence) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| match item {
            Value::Mapping(_) => {
                let target = item.get("target").and_then(scalar)?.parse().ok()?;
                let published = item
                    .get("published")
                    .and_then(scalar)
                    .and_then(|p| p.parse().ok());
                Some((published, target))
            }
            other => {
                let text = scalar(other)?;
                let text = text.split('/').next().unwrap_or_default();
                let parts: Vec<&str> = text.rsplitn(3, ':').collect();
                let container = parts.first()?.parse().ok()?;
                let host = parts.get(1).and_then(|p| p.parse().ok());
                Some((host, container))
            }
        })
        .collect()
}

pub fn parse_port(text: &str) -> Option<u16> {
    text.parse().ok().filter(|port| *port > 0)
}

/// `host:port` → (host, port).
pub fn host_port(text: &str) -> Option<(String, u16)> {
    let (host, port) = text.rsplit_once(':')?;
    Some((host.to_owned(), parse_port(port)?))
}

/// `postgres://user:password@host:port/database?…` → (user, password, host, port, database).
pub fn parse_postgres_url(url: &str) -> Option<(String, String, String, u16, String)> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))?;
    let (credentials, location) = rest.rsplit_once('@')?;
    let (user, password) = credentials.split_once(':').unwrap_or((credentials, ""));
    let (address, database) = location.split_once('/')?;
    let database = database.split('?').next().unwrap_or_default();
    let (host, port) = match address.rsplit_once(':') {
        Some((host, port)) => (host, parse_port(port)?),
        None => (address, 5432),
    };
    Some((
        user.to_owned(),
        password.to_owned(),
        host.to_owned(),
        port,
        database.to_owned(),
    ))
}

/// What the nginx checks need from a config file.
#[derive(Debug, Default)]
pub struct NginxConfig {
    /// upstream name → its `server host:port` entries.
    pub upstreams: BTreeMap<String, Vec<(String, u16)>>,
    pub listen_ports: Vec<u16>,
    /// `proxy_pass` targets with the scheme removed.
    pub proxy_passes: Vec<String>,
}

pub fn parse_nginx(text: &str) -> NginxConfig {
    let mut tokens = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default();
        let spaced = line
            .replace('{', " { ")
            .replace('}', " } ")
            .replace(';', " ; ");
        tokens.extend(spaced.split_whitespace().map(str::to_owned));
    }
    let mut config = NginxConfig::default();
    let mut blocks: Vec<Vec<String>> = Vec::new();
    let mut statement: Vec<String> = Vec::new();
    for token in tokens {
        match token.as_str() {
            "{" => blocks.push(std::mem::take(&mut statement)),
            "}" => {
                blocks.pop();
            }
            ";" => {
                let words = std::mem::take(&mut statement);
                let Some(directive) = words.first() else {
                    continue;
                };
                let block = blocks.last();
                let block_kind = block.and_then(|b| b.first()).map(String::as_str);
                match (block_kind, directive.as_str()) {
                    (Some("upstream"), "server") => {
                        let name = block.and_then(|b| b.get(1)).cloned().unwrap_or_default();
                        if let Some(address) = words.get(1).and_then(|a| host_port(a)) {
                            config.upstreams.entry(name).or_default().push(address);
                        }
                    }
                    (Some("server"), "listen") => {
                        if let Some(port) = words.get(1).and_then(|address| {
                            parse_port(address.rsplit(':').next().unwrap_or(address))
                        }) {
                            config.listen_ports.push(port);
                        }
                    }
                    (_, "proxy_pass") => {
                        if let Some(target) = words.get(1) {
                            let target = target
                                .trim_start_matches("http://")
                                .trim_start_matches("https://");
                            config
                                .proxy_passes
                                .push(target.split('/').next().unwrap_or_default().to_owned());
                        }
                    }
                    _ => {}
                }
            }
            _ => statement.push(token),
        }
    }
    config
}

/// A Dockerfile stage: its base image, its name, and its instructions (continuations
/// joined, comments dropped).
#[derive(Debug)]
pub struct Stage {
    pub base: String,
    pub name: Option<String>,
    pub instructions: Vec<String>,
}

pub fn parse_dockerfile(text: &str) -> Vec<Stage> {
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
        } else {
            current.push_str(trimmed);
            instructions.push(std::mem::take(&mut current));
        }
    }
    if !current.trim().is_empty() {
        instructions.push(current);
    }
    let mut stages: Vec<Stage> = Vec::new();
    for instruction in instructions {
        let mut parts = instruction.split_whitespace();
        let keyword = parts.next().unwrap_or_default().to_ascii_uppercase();
        if keyword == "FROM" {
            let args: Vec<&str> = parts.filter(|p| !p.starts_with("--")).collect();
            let name = match args.as_slice() {
                [_, as_, name] if as_.eq_ignore_ascii_case("as") => Some(name.to_string()),
                _ => None,
            };
            stages.push(Stage {
                base: args.first().map(|b| b.to_string()).unwrap_or_default(),
                name,
                instructions: Vec::new(),
            });
        } else if let Some(stage) = stages.last_mut() {
            stage.instructions.push(instruction);
        }
    }
    stages
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_small_parsers_work() {
        assert_eq!(interpolate("${A:-x}/${B-y}/${C}/$D/$$"), "x/y///$");
        assert_eq!(
            interpolate("${S?set S (at least 32 bytes)}/${T:?no-default}"),
            "<S>/<T>"
        );
        assert_eq!(
            interpolate("postgres://agora:${POSTGRES_PASSWORD:-agora}@postgres:5432/agora"),
            "postgres://agora:agora@postgres:5432/agora"
        );
        assert_eq!(
            parse_postgres_url("postgres://u:p@db:5433/x?sslmode=disable"),
            Some(("u".into(), "p".into(), "db".into(), 5433, "x".into()))
        );
        let nginx = parse_nginx(
            "upstream up { zone z 64k; server a-1:80 resolve; server a-2:80; }\n\
             server { listen 8080; location / { proxy_pass http://up; } } # server x:1;",
        );
        assert_eq!(
            nginx.upstreams["up"],
            vec![("a-1".to_owned(), 80), ("a-2".to_owned(), 80)]
        );
        assert_eq!(nginx.listen_ports, vec![8080]);
        assert_eq!(nginx.proxy_passes, vec!["up".to_owned()]);
        let stages = parse_dockerfile(
            "# c\nFROM rust:1-bookworm AS builder\nRUN a \\\n  # inner comment\n  b\nFROM debian:bookworm-slim\nUSER 1\n",
        );
        assert_eq!(stages.len(), 2);
        assert_eq!(stages[0].name.as_deref(), Some("builder"));
        assert_eq!(stages[0].instructions, vec!["RUN a  b".to_owned()]);
        assert_eq!(stages[1].base, "debian:bookworm-slim");
        let mut merged: Value =
            serde_yaml::from_str("a: &a {x: 1}\nb: &b {y: 2}\nc: {<<: [*a, *b], z: 3}\nd: *a\n")
                .expect("yaml");
        merged.apply_merge().expect("merge");
        assert_eq!(merged["c"]["x"], Value::from(1));
        assert_eq!(merged["c"]["y"], Value::from(2));
    }
}
