//! Validation of the store's options, turning what the user wrote into [`StoreSettings`].
//! Every refusal names the option, and none repeats its value (URLs carry passwords).

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use zeroize::Zeroizing;

use crate::backend::Acknowledgement;
use crate::connection::LinkTiming;
use crate::error::{Result, StoreError};
use crate::keys::{KeyRing, SessionKey};
use crate::limits::DEFAULT_MAX_SESSION_BYTES;
use crate::store::StoreSettings;
use crate::target::Target;
use redis::{ClientTlsConfig, TlsCertificates};

/// The default `COUNT` hint of SCAN steps: few round trips over a large keyspace, and still
/// a short step for Redis.
pub const DEFAULT_SCAN_COUNT: u32 = 1000;

/// The default lifetime of a tombstone: five minutes, longer than any request that could
/// still write back a session it loaded before the logout.
pub const DEFAULT_TOMBSTONE_MS: u64 = 300_000;

/// The default `waitTimeout`: long enough for a replica on the same network, short enough to
/// leave most of the default command timeout.
pub const DEFAULT_WAIT_MS: u64 = 500;

/// The default `busyPollMicros`: covers the time Node's thread takes to turn one outcome
/// into the next request, so that a lone caller's requests start without a thread wake-up.
pub const DEFAULT_BUSY_POLL_MICROS: u64 = 100;

/// The largest `busyPollMicros`: past a millisecond, looking costs more than a wake-up.
pub const MAX_BUSY_POLL_MICROS: u64 = 1000;

/// An encryption key as given: raw bytes, or base64 text.
pub enum KeyInput {
    /// 32 raw bytes (a Node `Buffer`).
    Bytes(Zeroizing<Vec<u8>>),
    /// 32 bytes in standard base64.
    Base64(Zeroizing<String>),
}

/// Certificates for `rediss://` connections, in PEM; absent parts fall back to the system's
/// trust store (CA) or to no client certificate.
#[derive(Default)]
pub struct TlsInput {
    /// CA certificate(s) that signed the server's certificate.
    pub ca: Option<Vec<u8>>,
    /// Client certificate, for servers that require one (`tls-auth-clients yes`).
    pub cert: Option<Vec<u8>>,
    /// Private key of the client certificate.
    pub key: Option<Zeroizing<Vec<u8>>>,
}

/// The options as the user gave them, defaults already applied where the JS layer owns them.
pub struct StoreOptions {
    /// `redis://` or `rediss://` URL, with optional user, password and database.
    pub url: String,
    /// Key prefix.
    pub prefix: String,
    /// Cookie secrets, first one newest.
    pub secrets: Vec<String>,
    /// Seed node URLs of a Redis Cluster; when given, `url` is not used.
    pub cluster: Option<Vec<String>>,
    /// Certificates for `rediss://`.
    pub tls: Option<TlsInput>,
    /// Sentinels and the name of the primary they watch.
    pub sentinel: Option<(Vec<String>, String)>,
    /// Explicit encryption keys; when absent, one key is derived from each secret.
    pub encryption_keys: Option<Vec<KeyInput>>,
    /// Name of the session cookie.
    pub cookie_name: String,
    /// Largest session JSON accepted, in bytes.
    pub max_session_bytes: Option<f64>,
    /// `COUNT` hint of each SCAN step.
    pub scan_count: Option<f64>,
    /// Lifetime of a destroyed session's tombstone, in seconds.
    pub tombstone_ttl_secs: Option<f64>,
    /// Replicas that must confirm each write.
    pub wait_replicas: Option<f64>,
    /// How long to wait for them, in milliseconds.
    pub wait_timeout_ms: Option<f64>,
    /// Bound of one command, in milliseconds.
    pub command_timeout_ms: Option<f64>,
    /// Bound of one connection attempt, in milliseconds.
    pub connect_timeout_ms: Option<f64>,
    /// Cap of the reconnection backoff, in milliseconds.
    pub reconnect_max_delay_ms: Option<f64>,
    /// Prefix of the per-user index keys, when the index is kept.
    pub user_index_prefix: Option<String>,
    /// Prefix of connect-redis's plaintext sessions, when they are to be migrated.
    pub legacy_prefix: Option<String>,
}

/// Checks every option and builds the settings of a store.
pub fn validate(options: StoreOptions) -> Result<StoreSettings> {
    let timing = timing(&options)?;
    let acknowledgement = acknowledgement(&options, &timing)?;
    let secrets = check_secrets(options.secrets)?;
    let keys = match options.encryption_keys {
        Some(inputs) => key_ring_from_inputs(inputs)?,
        None => KeyRing::derive_from_secrets(&secrets)?,
    };

    if options.cookie_name.is_empty() {
        return Err(StoreError::option("cookieName", "must not be empty"));
    }

    Ok(StoreSettings {
        target: match options.sentinel {
            Some((nodes, master_name)) => sentinel_target(&nodes, &master_name)?,
            None => target_for(&options.url, options.cluster.as_deref(), options.tls, &timing)?,
        },
        prefix: options.prefix,
        secrets,
        keys,
        cookie_name: options.cookie_name,
        max_session_bytes: positive("maxSessionBytes", options.max_session_bytes)?
            .map_or(DEFAULT_MAX_SESSION_BYTES, |bytes| bytes as usize),
        scan_count: positive("scanCount", options.scan_count)?
            .map_or(DEFAULT_SCAN_COUNT, |count| count.min(u32::MAX as u64) as u32),
        acknowledgement,
        tombstone_ms: positive("tombstoneTtl", options.tombstone_ttl_secs)?
            .map_or(DEFAULT_TOMBSTONE_MS, |secs| secs.saturating_mul(1000)),
        timing,
        user_index_prefix: non_empty("userIndexPrefix", options.user_index_prefix)?,
        legacy_prefix: non_empty("legacyPrefix", options.legacy_prefix)?,
    })
}

fn check_secrets(secrets: Vec<String>) -> Result<Vec<String>> {
    if secrets.is_empty() {
        return Err(StoreError::option("secret", "is required (a string or an array of strings)"));
    }
    if secrets.iter().any(String::is_empty) {
        return Err(StoreError::option("secret", "must not contain an empty string"));
    }
    Ok(secrets)
}

fn key_ring_from_inputs(inputs: Vec<KeyInput>) -> Result<KeyRing> {
    let keys = inputs
        .into_iter()
        .map(|input| match input {
            KeyInput::Bytes(bytes) => SessionKey::from_bytes(&bytes),
            KeyInput::Base64(text) => {
                let bytes = Zeroizing::new(STANDARD.decode(text.trim()).map_err(|_| {
                    StoreError::option("encryptionKeys", "a string key must be base64")
                })?);
                SessionKey::from_bytes(&bytes)
            }
        })
        .collect::<Result<Vec<_>>>()?;
    KeyRing::from_keys(keys)
}

fn target_for(
    url: &str,
    cluster: Option<&[String]>,
    tls: Option<TlsInput>,
    timing: &LinkTiming,
) -> Result<Target> {
    let certificates = tls.map(certificates).transpose()?;
    let Some(seeds) = cluster else {
        return Ok(Target::Single(Box::new(client_for("url", url, certificates)?)));
    };
    if seeds.is_empty() {
        return Err(StoreError::option("cluster", "must list at least one seed node URL"));
    }
    for seed in seeds {
        client_for("cluster", seed, None)?;
    }
    let (connect, command) = (timing.connect_timeout, timing.command_timeout);
    Target::cluster(seeds, certificates, connect, command)
        .map_err(|_| StoreError::option("cluster", "the seed node URLs were refused"))
}

fn sentinel_target(nodes: &[String], master_name: &str) -> Result<Target> {
    if nodes.is_empty() {
        return Err(StoreError::option("sentinel", "`nodes` must list at least one sentinel URL"));
    }
    if master_name.is_empty() {
        return Err(StoreError::option("sentinel", "`masterName` must not be empty"));
    }
    for node in nodes {
        client_for("sentinel", node, None)?;
    }
    Target::sentinel(nodes, master_name)
        .map_err(|_| StoreError::option("sentinel", "the sentinel URLs were refused"))
}

fn certificates(tls: TlsInput) -> Result<TlsCertificates> {
    let pem = |bytes: &Option<Vec<u8>>, marker: &[u8], what: &str| match bytes {
        Some(bytes) if !contains(bytes, marker) => {
            Err(StoreError::option("tls", format!("`{what}` is not PEM")))
        }
        _ => Ok(()),
    };
    pem(&tls.ca, b"-----BEGIN CERTIFICATE-----", "ca")?;
    pem(&tls.cert, b"-----BEGIN CERTIFICATE-----", "cert")?;
    if let Some(key) = &tls.key {
        if !contains(key, b"PRIVATE KEY-----") {
            return Err(StoreError::option("tls", "`key` is not a PEM private key"));
        }
    }

    let client_tls = match (tls.cert, tls.key) {
        (Some(client_cert), Some(key)) => {
            Some(ClientTlsConfig { client_cert, client_key: key.to_vec() })
        }
        (None, None) => None,
        _ => return Err(StoreError::option("tls", "`cert` and `key` go together")),
    };
    Ok(TlsCertificates { client_tls, root_cert: tls.ca })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

fn client_for(
    option: &'static str,
    url: &str,
    certificates: Option<TlsCertificates>,
) -> Result<redis::Client> {
    let scheme_ok = ["redis://", "rediss://", "redis+unix://", "unix://"]
        .iter()
        .any(|scheme| url.starts_with(scheme));
    if !scheme_ok {
        return Err(StoreError::option(option, "must start with redis:// or rediss://"));
    }

    let secure = url.starts_with("rediss://");
    if secure {
        // rustls needs a process-wide crypto provider; another library may have set one.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }

    let invalid = |_| StoreError::option(option, "is not a valid Redis URL (host, port, db)");
    match certificates {
        None => redis::Client::open(url).map_err(invalid),
        Some(_) if !secure => Err(StoreError::option("tls", "needs a rediss:// URL")),
        Some(certs) => redis::Client::build_with_tls(url, certs)
            .map_err(|_| StoreError::option("tls", "the certificates or the key were refused")),
    }
}

fn acknowledgement(
    options: &StoreOptions,
    timing: &LinkTiming,
) -> Result<Option<Acknowledgement>> {
    let Some(replicas) = positive("waitReplicas", options.wait_replicas)? else {
        return Ok(None);
    };
    let timeout_ms = positive("waitTimeout", options.wait_timeout_ms)?.unwrap_or(DEFAULT_WAIT_MS);
    if Duration::from_millis(timeout_ms) >= timing.command_timeout {
        return Err(StoreError::option("waitTimeout", "must be shorter than commandTimeout"));
    }
    let replicas =
        u32::try_from(replicas).map_err(|_| StoreError::option("waitReplicas", "is too large"))?;
    Ok(Some(Acknowledgement { replicas, timeout_ms }))
}

fn timing(options: &StoreOptions) -> Result<LinkTiming> {
    let mut timing = LinkTiming::default();
    if let Some(ms) = positive("commandTimeout", options.command_timeout_ms)? {
        timing.command_timeout = Duration::from_millis(ms);
    }
    if let Some(ms) = positive("connectTimeout", options.connect_timeout_ms)? {
        timing.connect_timeout = Duration::from_millis(ms);
    }
    if let Some(ms) = positive("reconnectMaxDelay", options.reconnect_max_delay_ms)? {
        timing.backoff_max = Duration::from_millis(ms);
    }
    Ok(timing)
}

/// How long the dispatcher busy-polls for requests after each event (`busyPollMicros`):
/// a whole number of microseconds up to [`MAX_BUSY_POLL_MICROS`], zero to never poll.
pub fn busy_poll(micros: Option<f64>) -> Result<Duration> {
    let refusal = || {
        StoreError::option(
            "busyPollMicros",
            "must be a whole number from 0 to 1000 (microseconds)",
        )
    };
    let micros = match micros {
        None => DEFAULT_BUSY_POLL_MICROS,
        Some(v) if v >= 0.0 && v.fract() == 0.0 && v <= MAX_BUSY_POLL_MICROS as f64 => v as u64,
        Some(_) => return Err(refusal()),
    };
    Ok(Duration::from_micros(micros))
}

/// A prefix that is absent, or not empty (an empty one would mix with every other key).
fn non_empty(option: &'static str, value: Option<String>) -> Result<Option<String>> {
    match value {
        Some(text) if text.is_empty() => Err(StoreError::option(option, "must not be empty")),
        other => Ok(other),
    }
}

/// 2^53, above which a JS number no longer holds every whole number.
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_992.0;

/// A whole number above zero and below 2^53, or absent.
fn positive(option: &'static str, value: Option<f64>) -> Result<Option<u64>> {
    match value {
        None => Ok(None),
        Some(v) if v >= 1.0 && v.fract() == 0.0 && v < MAX_SAFE_INTEGER => Ok(Some(v as u64)),
        Some(_) => Err(StoreError::option(option, "must be a positive whole number")),
    }
}

/// Options with every default, for tests that need a store on `url`.
#[cfg(test)]
pub(crate) fn options_for(url: &str) -> StoreOptions {
    StoreOptions {
        url: url.into(),
        prefix: "session:".into(),
        secrets: vec!["s3cret".into()],
        cluster: None,
        tls: None,
        sentinel: None,
        encryption_keys: None,
        cookie_name: "connect.sid".into(),
        max_session_bytes: None,
        scan_count: None,
        tombstone_ttl_secs: None,
        wait_replicas: None,
        wait_timeout_ms: None,
        command_timeout_ms: None,
        connect_timeout_ms: None,
        reconnect_max_delay_ms: None,
        user_index_prefix: None,
        legacy_prefix: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> StoreOptions {
        options_for("redis://127.0.0.1:6379")
    }

    fn refusal(options: StoreOptions) -> String {
        match validate(options) {
            Ok(_) => panic!("options were accepted"),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn defaults_are_accepted() {
        let settings = validate(options()).unwrap();
        assert_eq!(settings.max_session_bytes, DEFAULT_MAX_SESSION_BYTES);
        assert_eq!(settings.timing.command_timeout, Duration::from_secs(2));
    }

    #[test]
    fn each_refusal_names_its_option() {
        assert!(refusal(StoreOptions { secrets: vec![], ..options() }).contains("`secret`"));
        let bad_url = StoreOptions { url: "http://user:pw@x".into(), ..options() };
        let message = refusal(bad_url);
        assert!(message.contains("`url`") && !message.contains("pw"), "{message}");
        let short_key = KeyInput::Bytes(Zeroizing::new(vec![0; 16]));
        let keys = StoreOptions { encryption_keys: Some(vec![short_key]), ..options() };
        assert!(refusal(keys).contains("`encryptionKeys`"));
        let not_b64 = KeyInput::Base64(Zeroizing::new("***".into()));
        let keys = StoreOptions { encryption_keys: Some(vec![not_b64]), ..options() };
        assert!(refusal(keys).contains("`encryptionKeys`"));
        let timeout = StoreOptions { command_timeout_ms: Some(0.5), ..options() };
        assert!(refusal(timeout).contains("`commandTimeout`"));
    }

    #[test]
    fn base64_keys_are_accepted() {
        let key = KeyInput::Base64(Zeroizing::new(STANDARD.encode([7u8; 32])));
        assert!(validate(StoreOptions { encryption_keys: Some(vec![key]), ..options() }).is_ok());
    }

    #[test]
    fn busy_poll_is_bounded() {
        assert_eq!(busy_poll(None).unwrap(), Duration::from_micros(DEFAULT_BUSY_POLL_MICROS));
        assert_eq!(busy_poll(Some(0.0)).unwrap(), Duration::ZERO);
        assert_eq!(busy_poll(Some(1000.0)).unwrap(), Duration::from_micros(1000));
        for bad in [-1.0, 1.5, 1001.0, f64::NAN] {
            let message = busy_poll(Some(bad)).unwrap_err().to_string();
            assert!(message.contains("`busyPollMicros`"), "{message}");
        }
    }
}
