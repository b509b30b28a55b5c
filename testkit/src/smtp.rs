//! A real SMTP server for a test: aiosmtpd (`scripts/tools.sh smtp`) on a port of its own,
//! storing every message it accepts in a Maildir the test reads. It can be stopped and
//! started again on the same port (an outage).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running (or stopped) aiosmtpd.
pub struct SmtpServer {
    pub port: u16,
    pub maildir: PathBuf,
    child: Option<Child>,
}

impl SmtpServer {
    /// Starts one on a free port with an empty Maildir.
    pub async fn start() -> std::io::Result<SmtpServer> {
        let port = crate::free_port()?;
        let maildir = std::env::temp_dir().join(format!("agora-smtp-{}", uuid::Uuid::new_v4()));
        let mut server = SmtpServer {
            port,
            maildir,
            child: None,
        };
        server.resume().await?;
        Ok(server)
    }

    /// `smtp://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Starts it again (after [`SmtpServer::stop`]) on the same port and Maildir, and waits
    /// until it accepts connections.
    pub async fn resume(&mut self) -> std::io::Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        let python = crate::env::smtp_python();
        if !Path::new(&python).exists() {
            return Err(std::io::Error::other(format!(
                "aiosmtpd is not installed at {python}: run `scripts/tools.sh smtp` (scripts/test.sh does)"
            )));
        }
        let child = Command::new(&python)
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{}", self.port))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&self.maildir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        let port = self.port;
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                return Err(std::io::Error::other("aiosmtpd did not listen within 20 s"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops it (SIGKILL: connections drop, nothing more is accepted) and waits for the exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Every message accepted so far, as raw text.
    pub fn messages(&self) -> Vec<String> {
        let mut all = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(dir) = std::fs::read_dir(self.maildir.join(sub)) {
                for entry in dir.flatten() {
                    if let Ok(text) = std::fs::read_to_string(entry.path()) {
                        all.push(text);
                    }
                }
            }
        }
        all
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.maildir);
    }
}

/// The value of header `name` in a raw message (the first, unfolded), if any.
pub fn header(message: &str, name: &str) -> Option<String> {
    let head = message.split("\n\n").next().unwrap_or(message);
    let head = head.replace("\r\n", "\n");
    let mut lines = head.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some((key, value)) = line.split_once(':') {
            if key.eq_ignore_ascii_case(name) {
                let mut value = value.trim().to_owned();
                while lines.peek().is_some_and(|l| l.starts_with([' ', '\t'])) {
                    value.push(' ');
                    value.push_str(lines.next().unwrap_or_default().trim());
                }
                return Some(value);
            }
        }
    }
    None
}
