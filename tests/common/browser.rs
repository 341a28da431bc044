//! Headless Chromium for the browser tests, driven over WebDriver by `fantoccini` through
//! Debian's `chromedriver`, which is started on a free loopback port.
//!
//! Why WebDriver and not the DevTools protocol: chromedriver is built from the same Debian
//! source package as Chromium, so the two always match, while the DevTools crates carry
//! bindings generated from one Chromium revision's protocol; and WebDriver's find, click and
//! wait are exactly the steps the tests take. Needs `/usr/bin/chromium` and
//! `/usr/bin/chromedriver`; without them a test fails, it never skips.
//! `AIOPS_TEST_SCREENSHOTS=<dir>` keeps a PNG of each page a test saw.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

use super::wait_for;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long the browser may take to start, load a page or show an element.
pub const BROWSER_WAIT: Duration = Duration::from_secs(30);

/// A chromedriver child listening on a loopback port, in a process group of its own so that
/// dropping this value ends it and every Chromium it started, even when the test panics.
pub struct ChromeDriver {
    child: Child,
    url: String,
    /// The fresh `--user-data-dir` of its Chromium; removed after the processes are gone.
    profile: tempfile::TempDir,
}

impl ChromeDriver {
    /// Starts chromedriver and waits until it accepts sessions; fails the test, saying how
    /// to install them, when Chromium or chromedriver is missing.
    pub async fn start() -> ChromeDriver {
        for program in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(program).exists(),
                "{program} is missing: the browser test needs Debian's Chromium and ChromeDriver. \
                 Run `.ci/run` (it installs them), or `apt-get install chromium chromium-driver`."
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free loopback port")
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg("--log-level=SEVERE")
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {CHROMEDRIVER}: {e}"));
        let driver = ChromeDriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            profile: tempfile::tempdir().expect("temp dir"),
        };
        let status = format!("{}/status", driver.url);
        let client = reqwest::Client::new();
        wait_for(
            &format!("chromedriver to be ready on port {port}"),
            BROWSER_WAIT,
            || async {
                let status: Value = client.get(&status).send().await.ok()?.json().await.ok()?;
                (status["value"]["ready"] == true).then_some(())
            },
        )
        .await;
        driver
    }

    /// A new session in headless Chromium, started with the flags a closed network needs.
    pub async fn session(&self) -> Client {
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,2400",
        ]
        .map(String::from)
        .into_iter()
        .chain([format!("--user-data-dir={}", self.profile.path().display())])
        .collect::<Vec<_>>();
        let capabilities = json!({"goog:chromeOptions": {"binary": CHROMIUM, "args": args}});
        let Value::Object(capabilities) = capabilities else {
            unreachable!("capabilities are an object")
        };
        ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("headless Chromium did not start through chromedriver: {e}"))
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Clicks the element `css` finds on the page.
pub async fn click(browser: &Client, css: &str) {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} is on the page: {e}"))
        .click()
        .await
        .unwrap();
}

/// Keeps a PNG of what the browser shows as `<name>.png` in `$AIOPS_TEST_SCREENSHOTS`, if set.
pub async fn keep_screenshot(browser: &Client, name: &str) {
    let Some(dir) = std::env::var_os("AIOPS_TEST_SCREENSHOTS") else {
        return;
    };
    let png = browser.screenshot().await.expect("screenshot");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    std::fs::write(Path::new(&dir).join(format!("{name}.png")), png).expect("write screenshot");
}
