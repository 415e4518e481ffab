//! The Node-API surface: converts between JS values and the core, nothing more.
//!
//! This binding is internal; `index.js` adapts it to express-session. Errors cross as JS
//! `Error`s whose message starts with the stable code (`ERR_REDIS: ...`), which `index.js`
//! moves into `err.code`. A panic never crosses: it becomes an `ERR_INTERNAL` error.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use napi::bindgen_prelude::{within_runtime_if_available, Buffer, Either, Function};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use napi_derive::napi;
use zeroize::Zeroizing;

use crate::config::{self, KeyInput, StoreOptions};
use crate::connection::{EventSink, LinkEvent};
use crate::error::StoreError;
use crate::signature;
use crate::store::SessionStore;

/// Options of [`NativeStore`], defaults already applied by `index.js`.
#[napi(object)]
pub struct NativeOptions {
    /// Redis URL.
    pub url: String,
    /// Key prefix.
    pub prefix: String,
    /// Cookie secrets, newest first.
    pub secrets: Vec<String>,
    /// Explicit encryption keys (Buffers or base64 strings).
    pub encryption_keys: Option<Vec<Either<Buffer, String>>>,
    /// Session cookie name.
    pub cookie_name: String,
    /// Largest session JSON in bytes.
    pub max_session_bytes: Option<f64>,
    /// SCAN COUNT hint.
    pub scan_count: Option<f64>,
    /// Tombstone lifetime in seconds.
    pub tombstone_ttl: Option<f64>,
    /// Command timeout in ms.
    pub command_timeout: Option<f64>,
    /// Connection attempt timeout in ms.
    pub connect_timeout: Option<f64>,
    /// Reconnection backoff cap in ms.
    pub reconnect_max_delay: Option<f64>,
}

/// One decrypted session, as listed by `all`.
#[napi(object)]
pub struct NativeSession {
    /// Session id.
    pub sid: String,
    /// Session JSON.
    pub json: String,
}

/// The result of `all`.
#[napi(object)]
pub struct NativeAll {
    /// Sessions that decrypted.
    pub sessions: Vec<NativeSession>,
    /// Values that did not decrypt.
    pub undecryptable: u32,
}

type EventFn = ThreadsafeFunction<(String, String), (), (String, String), Status, false, true>;

/// The native half of `RedisStore`.
#[napi]
pub struct NativeStore {
    inner: Arc<SessionStore>,
}

#[napi]
impl NativeStore {
    /// Validates the options and starts connecting in the background. `onEvent(name, detail)`
    /// receives `connect` and `disconnect`; it does not keep the process alive.
    #[napi(constructor, catch_unwind)]
    pub fn new(
        options: NativeOptions,
        on_event: Function<'_, (String, String), ()>,
    ) -> napi::Result<Self> {
        let settings = config::validate(store_options(options)).map_err(to_napi)?;
        let events: EventFn = on_event
            .build_threadsafe_function()
            .callee_handled::<false>()
            .weak::<true>()
            .build()?;

        let sink: EventSink = Arc::new(move |event| {
            let call = match event {
                LinkEvent::Connected => ("connect".to_owned(), String::new()),
                LinkEvent::Disconnected(reason) => ("disconnect".to_owned(), reason),
            };
            events.call(call, ThreadsafeFunctionCallMode::NonBlocking);
        });

        let inner = within_runtime_if_available(|| SessionStore::start(settings, sink));
        Ok(Self { inner: Arc::new(inner) })
    }

    /// The session JSON of `sid`, or null.
    #[napi]
    pub async fn get(&self, sid: String) -> napi::Result<Option<String>> {
        let store = self.inner.clone();
        guard(async move { store.get(&sid).await }).await
    }

    /// Writes `json` for `sid`; `expiresAt` is the cookie's expiry in epoch ms, if any.
    #[napi]
    pub async fn set(
        &self,
        sid: String,
        json: String,
        expires_at: Option<f64>,
        ttl_secs: Option<f64>,
    ) -> napi::Result<()> {
        let store = self.inner.clone();
        guard(async move { store.set(&sid, json.as_bytes(), expires_at, ttl_secs).await }).await
    }

    /// Renews the lifetime of an existing session.
    #[napi]
    pub async fn touch(
        &self,
        sid: String,
        expires_at: Option<f64>,
        ttl_secs: Option<f64>,
    ) -> napi::Result<()> {
        let store = self.inner.clone();
        guard(async move { store.touch(&sid, expires_at, ttl_secs).await }).await
    }

    /// Removes a session.
    #[napi]
    pub async fn destroy(&self, sid: String) -> napi::Result<()> {
        let store = self.inner.clone();
        guard(async move { store.destroy(&sid).await }).await
    }

    /// Every session id under the prefix.
    #[napi]
    pub async fn ids(&self) -> napi::Result<Vec<String>> {
        let store = self.inner.clone();
        guard(async move { store.ids().await }).await
    }

    /// The number of sessions under the prefix.
    #[napi]
    pub async fn length(&self) -> napi::Result<u32> {
        let store = self.inner.clone();
        guard(async move { store.length().await }).await
    }

    /// Every readable session under the prefix.
    #[napi]
    pub async fn all(&self) -> napi::Result<NativeAll> {
        let store = self.inner.clone();
        let all = guard(async move { store.all().await }).await?;
        let sessions = all
            .sessions
            .into_iter()
            .map(|entry| NativeSession { sid: entry.sid, json: entry.json })
            .collect();
        Ok(NativeAll { sessions, undecryptable: all.undecryptable })
    }

    /// Deletes every session under the prefix; resolves to how many were deleted.
    #[napi]
    pub async fn clear(&self) -> napi::Result<u32> {
        let store = self.inner.clone();
        let removed = guard(async move { store.clear().await }).await?;
        Ok(u32::try_from(removed).unwrap_or(u32::MAX))
    }

    /// The session JSON named by a raw Cookie header, or null.
    #[napi]
    pub async fn session_from_cookie(&self, header: String) -> napi::Result<Option<String>> {
        let store = self.inner.clone();
        guard(async move { store.session_from_cookie(&header).await }).await
    }

    /// The verified session id in a raw Cookie header, or null.
    #[napi(catch_unwind)]
    pub fn sid_from_cookie(&self, header: String) -> Option<String> {
        self.inner.sid_from_cookie(&header)
    }

    /// Closes the connection and stops reconnecting.
    #[napi]
    pub async fn close(&self) -> napi::Result<()> {
        let store = self.inner.clone();
        guard(async move {
            store.close().await;
            Ok(())
        })
        .await
    }
}

/// `cookie-signature`'s `sign`.
#[napi(js_name = "sign", catch_unwind)]
pub fn sign_cookie(value: String, secret: String) -> String {
    signature::sign(&value, secret.as_bytes())
}

/// `cookie-signature`'s `unsign` over several secrets; `null` when none matches.
#[napi(js_name = "unsign", catch_unwind)]
pub fn unsign_cookie(input: String, secrets: Vec<String>) -> Option<String> {
    signature::unsign(&input, &secrets).map(str::to_owned)
}

fn store_options(options: NativeOptions) -> StoreOptions {
    let encryption_keys = options.encryption_keys.map(|keys| {
        keys.into_iter()
            .map(|key| match key {
                Either::A(bytes) => KeyInput::Bytes(Zeroizing::new(bytes.to_vec())),
                Either::B(text) => KeyInput::Base64(Zeroizing::new(text)),
            })
            .collect()
    });

    StoreOptions {
        url: options.url,
        prefix: options.prefix,
        secrets: options.secrets,
        encryption_keys,
        cookie_name: options.cookie_name,
        max_session_bytes: options.max_session_bytes,
        scan_count: options.scan_count,
        tombstone_ttl_secs: options.tombstone_ttl,
        command_timeout_ms: options.command_timeout,
        connect_timeout_ms: options.connect_timeout,
        reconnect_max_delay_ms: options.reconnect_max_delay,
    }
}

/// Runs a core future, turning its error, or a panic, into a coded JS error.
async fn guard<T>(work: impl Future<Output = crate::error::Result<T>>) -> napi::Result<T> {
    match AssertUnwindSafe(work).catch_unwind().await {
        Ok(result) => result.map_err(to_napi),
        Err(_) => Err(to_napi(StoreError::Internal("a panic was caught in the store".into()))),
    }
}

fn to_napi(err: StoreError) -> napi::Error {
    napi::Error::new(Status::GenericFailure, format!("{}: {err}", err.code()))
}
