//! The Node-API surface: converts between JS values and the core, nothing more.
//!
//! This binding is internal; `index.js` adapts it to express-session. The per-request
//! operations (get, set, touch, destroy, session from cookie) are gathered by `index.js`
//! during a turn of the event loop and handed over by one `flushOps(text, records)` call;
//! their outcomes come back in batches through one `onBatch(numbers, text)` call per wake-up
//! of the event loop (both forms are described in `batch_wire`). Rare operations (listing,
//! clearing, inspecting, closing) are plain async methods.
//!
//! Errors cross as messages that start with the stable code (`ERR_REDIS: ...`), which
//! `index.js` moves into `err.code`. A panic never crosses: it becomes `ERR_INTERNAL`.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use napi::bindgen_prelude::{
    spawn, within_runtime_if_available, Buffer, Either, External, Float64ArraySlice, Function,
};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use napi_derive::napi;
use zeroize::Zeroizing;

use crate::batch_call::{BatchCall, Inbox};
use crate::batch_wire;
use crate::config::{self, KeyInput, StoreOptions, TlsInput};
use crate::connection::EventSink;
use crate::dispatch::Dispatcher;
use crate::error::StoreError;
use crate::inspect::Stored;
use crate::json_split;
use crate::session_events::{EndSink, SessionEnd};
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
    /// Seed node URLs of a Redis Cluster.
    pub cluster: Option<Vec<String>>,
    /// Certificates for `rediss://`.
    pub tls: Option<NativeTls>,
    /// Sentinels and the primary's name.
    pub sentinel: Option<NativeSentinel>,
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
    /// Replicas that must confirm each write.
    pub wait_replicas: Option<f64>,
    /// How long to wait for them, in ms.
    pub wait_timeout: Option<f64>,
    /// Command timeout in ms.
    pub command_timeout: Option<f64>,
    /// Connection attempt timeout in ms.
    pub connect_timeout: Option<f64>,
    /// Reconnection backoff cap in ms.
    pub reconnect_max_delay: Option<f64>,
    /// Prefix of the per-user index keys, when the index is kept.
    pub user_index_prefix: Option<String>,
    /// Prefix of connect-redis's plaintext sessions, when they are to be migrated.
    pub legacy_prefix: Option<String>,
    /// How long the dispatcher busy-polls for requests after each event, in µs.
    pub busy_poll_micros: Option<f64>,
    /// Hand sessions read over cut into shape and values (see `json_split`), for
    /// `index.js` to build them without `JSON.parse`; off when an application serializer
    /// reads them.
    pub shape_sessions: Option<bool>,
}

/// Where Sentinel runs, and the name of the primary it watches.
#[napi(object)]
pub struct NativeSentinel {
    /// Sentinel URLs.
    pub nodes: Vec<String>,
    /// The monitored primary's name.
    pub master_name: String,
}

/// Certificates for `rediss://`, in PEM.
#[napi(object)]
pub struct NativeTls {
    /// CA certificate(s).
    pub ca: Option<Buffer>,
    /// Client certificate.
    pub cert: Option<Buffer>,
    /// Client private key.
    pub key: Option<Buffer>,
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

/// What `inspect` found for one sid.
#[napi(object)]
pub struct NativeInspection {
    /// `missing`, `tombstone`, `session` or `undecryptable`.
    pub kind: String,
    /// Milliseconds left (-1: no expiry, -2: no key).
    pub ttl_ms: f64,
    /// The decrypted JSON, for a session.
    pub json: Option<String>,
    /// Hex fingerprint of the sealing key, when readable.
    pub key_id: Option<String>,
}

/// One indexed session of a user.
#[napi(object)]
pub struct NativeUserSession {
    /// Session id.
    pub sid: String,
    /// Session JSON; null while its first write may still be on its way.
    pub json: Option<String>,
    /// Milliseconds left (-1: no expiry, -2: not written yet).
    pub ttl_ms: f64,
    /// Last save or touch, in epoch ms.
    pub last_write: f64,
}

/// Statistics of one SCAN step.
#[napi(object)]
pub struct NativeStatsPage {
    /// Cursor of the next step; "0" at the end.
    pub cursor: String,
    /// Sessions seen.
    pub sessions: u32,
    /// Tombstones seen.
    pub tombstones: u32,
    /// Memory of the sessions seen, in bytes.
    pub session_bytes: f64,
    /// Milliseconds left of each session (-1: none).
    pub ttls_ms: Vec<f64>,
    /// Sealing key fingerprint of each session ("" when unreadable).
    pub key_ids: Vec<String>,
}

/// One step of key rotation (see `rotation`).
#[napi(object)]
pub struct NativeRotationPage {
    /// Cursor of the next step; "0" at the end.
    pub cursor: String,
    /// String keys found.
    pub scanned: u32,
    /// Values re-sealed with the newest key.
    pub rotated: u32,
    /// Values on the newest key already.
    pub already_current: u32,
    /// Values changed by live traffic before they could be written back.
    pub changed_meanwhile: u32,
    /// Values that open with none of the keys.
    pub undecryptable: u32,
    /// Hex fingerprint of the newest key.
    pub key_id: String,
}

/// One step of counting the sessions under the prefix.
#[napi(object)]
pub struct NativeCountPage {
    /// Cursor of the next step; "0" at the end.
    pub cursor: String,
    /// String keys found.
    pub keys: u32,
}

/// The store's counters (see `counters`).
#[napi(object)]
pub struct NativeCounters {
    /// Reads that found a session.
    pub hits: f64,
    /// Reads that found none.
    pub misses: f64,
    /// Calls that failed on Redis.
    pub errors: f64,
    /// Reads served from legacy plaintext sessions.
    pub legacy: f64,
    /// Values that did not decrypt, by sealing key id.
    pub undecryptable: std::collections::HashMap<String, f64>,
}

/// What `onBatch` receives: the outcomes' numbers (in an array kept from batch to batch)
/// and how many there are, their text, then the texts of the cut sessions (as arguments,
/// or as one array for a large batch); see [`batch_wire`] and [`BatchCall`].
type BatchArgs = BatchCall;

/// The JS batch callback; it keeps the process alive until the store is closed.
type BatchFn = ThreadsafeFunction<(), (), BatchArgs, Status, false>;

/// The native half of `RedisStore`.
#[napi]
pub struct NativeStore {
    inner: Arc<SessionStore>,
    dispatcher: Arc<Dispatcher>,
    batch_fn: Arc<Mutex<Option<BatchFn>>>,
}

#[napi]
impl NativeStore {
    /// Validates the options and starts connecting in the background. `onBatch(flat)`
    /// receives results and link events (see the module documentation). Like a socket, the
    /// store keeps the process alive until `close()`.
    #[napi(constructor, catch_unwind)]
    pub fn new(
        options: NativeOptions,
        on_batch: Function<'_, BatchArgs, ()>,
    ) -> napi::Result<Self> {
        let busy_poll = config::busy_poll(options.busy_poll_micros).map_err(to_napi)?;
        let shaped = options.shape_sessions.unwrap_or(false);
        let settings = config::validate(store_options(options)).map_err(to_napi)?;

        // Outcomes wake JS through the callback, and the callback drains the outcomes: it
        // holds the dispatcher weakly so that the two do not keep each other alive.
        let batch_fn = Arc::new(Mutex::new(None));
        let dispatcher = Arc::new(Dispatcher::new(wake(batch_fn.clone()), busy_poll, shaped));
        let drained = Arc::downgrade(&dispatcher);
        let inbox = Arc::new(Inbox::default());
        let built: BatchFn = on_batch
            .build_threadsafe_function::<()>()
            .callee_handled::<false>()
            .build_callback(move |_ctx| Ok(encode(drained.upgrade(), inbox.clone())))?;
        if let Ok(mut slot) = batch_fn.lock() {
            *slot = Some(built);
        }

        let sink: EventSink = Arc::new(dispatcher.event_sink());
        let inner = within_runtime_if_available(|| SessionStore::start(settings, sink));
        let inner = Arc::new(inner);
        spawn(dispatcher.run(inner.clone()));
        Ok(Self { inner, dispatcher, batch_fn })
    }

    /// The handle that `submitOp` and `flushOps` take. Those are plain functions rather
    /// than methods: a method call on a class instance pays for borrow tracking, which
    /// cost more than the rest of the call on the per-request path.
    #[napi]
    pub fn dispatcher(&self) -> External<Arc<Dispatcher>> {
        External::new(self.dispatcher.clone())
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

    /// What is stored for `sid`, decrypted when possible (for the command-line tool).
    #[napi]
    pub async fn inspect(&self, sid: String) -> napi::Result<NativeInspection> {
        let store = self.inner.clone();
        let found = guard(async move { store.inspect(&sid).await }).await?;
        let (kind, json, key_id) = match found.stored {
            Stored::Missing => ("missing", None, None),
            Stored::Tombstone => ("tombstone", None, None),
            Stored::Session { json, key_id } => ("session", Some(json), Some(key_id)),
            Stored::Undecryptable { key_id } => ("undecryptable", None, key_id),
        };
        Ok(NativeInspection { kind: kind.into(), ttl_ms: found.ttl_ms as f64, json, key_id })
    }

    /// Statistics of one SCAN step from `cursor` ("0" to start), for the command-line tool.
    #[napi]
    pub async fn stats_page(&self, cursor: String) -> napi::Result<NativeStatsPage> {
        let store = self.inner.clone();
        let page = guard(async move { store.stats_page(&cursor).await }).await?;
        Ok(NativeStatsPage {
            cursor: page.cursor,
            sessions: page.sessions,
            tombstones: page.tombstones,
            session_bytes: page.session_bytes as f64,
            ttls_ms: page.ttls_ms.into_iter().map(|ttl| ttl as f64).collect(),
            key_ids: page.key_ids,
        })
    }

    /// One step of key rotation from `cursor` ("0" to start): re-seals with the newest key
    /// the values of one SCAN step that are unchanged since read, keeping their lifetime.
    #[napi]
    pub async fn rotate_page(&self, cursor: String) -> napi::Result<NativeRotationPage> {
        let store = self.inner.clone();
        let page = guard(async move { store.rotate_page(&cursor).await }).await?;
        Ok(NativeRotationPage {
            cursor: page.cursor,
            scanned: page.scanned,
            rotated: page.rotated,
            already_current: page.already_current,
            changed_meanwhile: page.changed_meanwhile,
            undecryptable: page.undecryptable,
            key_id: page.key_id,
        })
    }

    /// One step of counting the sessions under the prefix (the pre-pass of a rotation).
    #[napi]
    pub async fn count_page(&self, cursor: String) -> napi::Result<NativeCountPage> {
        let store = self.inner.clone();
        let page = guard(async move { store.count_page(&cursor).await }).await?;
        Ok(NativeCountPage { cursor: page.cursor, keys: page.keys })
    }

    /// Hits, misses, failed calls and undecryptable values since the store started.
    #[napi(catch_unwind)]
    pub fn counters(&self) -> NativeCounters {
        let snapshot = self.inner.counters();
        NativeCounters {
            hits: snapshot.hits as f64,
            misses: snapshot.misses as f64,
            errors: snapshot.errors as f64,
            legacy: snapshot.legacy as f64,
            undecryptable: snapshot
                .undecryptable
                .into_iter()
                .map(|(k, v)| (k, v as f64))
                .collect(),
        }
    }

    /// The sessions that `user`'s index points to (see `user_sessions`).
    #[napi]
    pub async fn user_sessions(&self, user: String) -> napi::Result<Vec<NativeUserSession>> {
        let store = self.inner.clone();
        let found = guard(async move { store.user_sessions(&user).await }).await?;
        Ok(found
            .into_iter()
            .map(|session| NativeUserSession {
                sid: session.sid,
                json: session.json,
                ttl_ms: session.ttl_ms as f64,
                last_write: session.last_write_ms as f64,
            })
            .collect())
    }

    /// Destroys `sids` and removes them from `user`'s index.
    #[napi]
    pub async fn destroy_user_sessions(
        &self,
        user: String,
        sids: Vec<String>,
    ) -> napi::Result<()> {
        let store = self.inner.clone();
        guard(async move { store.destroy_user_sessions(&user, &sids).await }).await
    }

    /// Removes `sids` from `user`'s index, leaving the sessions alone.
    #[napi]
    pub async fn forget_user_sessions(&self, user: String, sids: Vec<String>) -> napi::Result<()> {
        let store = self.inner.clone();
        guard(async move { store.forget_user_sessions(&user, &sids).await }).await
    }

    /// Starts hearing session ends from every instance; `listener([sid, reason])` is called
    /// for each. `sessionEndsSubscribed()` tells when the subscription is in place.
    #[napi(catch_unwind)]
    pub fn watch_session_ends(&self, listener: Function<'_, Vec<String>, ()>) -> napi::Result<()> {
        let listener: EndFn = listener
            .build_threadsafe_function::<Vec<String>>()
            .callee_handled::<false>()
            .build_callback(|ctx| Ok(ctx.value))?;
        let sink: EndSink = Arc::new(move |end: SessionEnd| {
            let args = vec![end.sid, end.reason.as_str().to_owned()];
            listener.call(args, ThreadsafeFunctionCallMode::NonBlocking);
        });
        within_runtime_if_available(|| self.inner.watch_ends(sink)).map_err(to_napi)
    }

    /// Resolves to whether the session-end subscription is in place, waiting for it at most
    /// the connect and command timeouts.
    #[napi]
    pub async fn session_ends_subscribed(&self) -> bool {
        let store = self.inner.clone();
        catch_panics(async move { Ok(store.ends_subscribed().await) }).await.unwrap_or(false)
    }

    /// Stops hearing session ends.
    #[napi(catch_unwind)]
    pub fn unwatch_session_ends(&self) {
        self.inner.unwatch_ends();
    }

    /// The verified session id in a raw Cookie header, or null.
    #[napi(catch_unwind)]
    pub fn sid_from_cookie(&self, header: String) -> Option<String> {
        self.inner.sid_from_cookie(&header)
    }

    /// Closes the store: new operations are refused, those in flight settle (each is
    /// bounded by the command timeout), then the connection closes and the batch callback is
    /// released so the process can exit.
    #[napi]
    pub async fn close(&self) -> napi::Result<()> {
        let (store, dispatcher, batch_fn) =
            (self.inner.clone(), self.dispatcher.clone(), self.batch_fn.clone());

        guard(async move {
            dispatcher.drain(store.command_timeout() + Duration::from_secs(1)).await;
            store.close().await;
            dispatcher.stop();
            drop(batch_fn.lock().ok().and_then(|mut slot| slot.take()));
            Ok(())
        })
        .await
    }
}

/// The JS listener of session ends; it receives `[sid, reason]`.
type EndFn = ThreadsafeFunction<Vec<String>, (), Vec<String>, Status, false>;

/// Queues the operations that JS gathered since the last call, and starts them: one
/// crossing of the boundary and at most one thread wake-up for all. `text`, `records` and
/// `values` are in the form of [`batch_wire`]; outcomes arrive through `onBatch` under each
/// operation's id. Refused as a whole (`ERR_CLOSED`) once the store is closing.
#[napi(js_name = "flushOps", catch_unwind)]
pub fn flush_ops(
    dispatcher: &External<Arc<Dispatcher>>,
    text: String,
    records: Float64ArraySlice<'_>,
    values: Float64ArraySlice<'_>,
) -> napi::Result<()> {
    let templates = dispatcher.templates();
    let (requests, refused) = batch_wire::decode_requests(&text, &records, &values, templates);
    dispatcher.submit_all(requests).map_err(to_napi)?;
    dispatcher.refuse(refused);
    dispatcher.flush();
    Ok(())
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

/// The wake-up of the outcome queue: one call of the JS batch callback.
fn wake(slot: Arc<Mutex<Option<BatchFn>>>) -> impl Fn() + Send + Sync + 'static {
    move || {
        if let Ok(guard) = slot.lock() {
            if let Some(batch_fn) = guard.as_ref() {
                batch_fn.call((), ThreadsafeFunctionCallMode::NonBlocking);
            }
        }
    }
}

/// Hands the encoded outcomes over as the arguments of `onBatch`.
fn encode(dispatcher: Option<Arc<Dispatcher>>, inbox: Arc<Inbox>) -> BatchArgs {
    let outcomes = dispatcher.map(|dispatcher| dispatcher.drain_outcomes()).unwrap_or_default();
    BatchCall { outcomes, inbox }
}

/// A session's JSON cut as the store hands it over (see `json_split`), or null when it
/// goes whole to `JSON.parse`. For the tests of `lib/session-shape.js`.
#[napi(js_name = "splitSessionJson", catch_unwind)]
pub fn split_session_json(json: String) -> Option<NativeSplit> {
    json_split::split(&json).map(|split| NativeSplit {
        descriptor: split.descriptor,
        slots: split.slots,
        text: split.text,
    })
}

/// See [`split_session_json`].
#[napi(object)]
pub struct NativeSplit {
    /// The shape.
    pub descriptor: String,
    /// One number per slot.
    pub slots: Vec<f64>,
    /// The strings and raw JSON pieces of the slots.
    pub text: String,
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
        cluster: options.cluster,
        tls: options.tls.map(|tls| TlsInput {
            ca: tls.ca.map(|ca| ca.to_vec()),
            cert: tls.cert.map(|cert| cert.to_vec()),
            key: tls.key.map(|key| Zeroizing::new(key.to_vec())),
        }),
        sentinel: options.sentinel.map(|sentinel| (sentinel.nodes, sentinel.master_name)),
        encryption_keys,
        cookie_name: options.cookie_name,
        max_session_bytes: options.max_session_bytes,
        scan_count: options.scan_count,
        tombstone_ttl_secs: options.tombstone_ttl,
        wait_replicas: options.wait_replicas,
        wait_timeout_ms: options.wait_timeout,
        command_timeout_ms: options.command_timeout,
        connect_timeout_ms: options.connect_timeout,
        reconnect_max_delay_ms: options.reconnect_max_delay,
        user_index_prefix: options.user_index_prefix,
        legacy_prefix: options.legacy_prefix,
    }
}

/// Runs a core future, turning its error, or a panic, into a coded JS error.
async fn guard<T>(work: impl Future<Output = crate::error::Result<T>>) -> napi::Result<T> {
    catch_panics(work).await.map_err(to_napi)
}

/// Runs a core future, turning a panic into [`StoreError::Internal`].
async fn catch_panics<T>(
    work: impl Future<Output = crate::error::Result<T>>,
) -> crate::error::Result<T> {
    match AssertUnwindSafe(work).catch_unwind().await {
        Ok(result) => result,
        Err(_) => Err(StoreError::Internal("a panic was caught in the store".into())),
    }
}

fn to_napi(err: StoreError) -> napi::Error {
    napi::Error::new(Status::GenericFailure, coded_message(&err))
}

/// The message JS turns into an `Error` with `code`.
fn coded_message(err: &StoreError) -> String {
    batch_wire::coded_message(err)
}

/// mimalloc: the request strings are allocated on Node's thread and freed on a Tokio worker,
/// a pattern on which the system allocator spent a quarter of the worker's time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Tokio worker threads for the store. The work per operation is small and all operations
/// share one connection, so one worker keeps up with Node's main thread; more workers only
/// add thread wake-ups competing for the same cores. `SEALED_REDIS_SESSION_THREADS`
/// overrides it.
const DEFAULT_WORKER_THREADS: usize = 1;

#[napi_derive::module_init]
fn init_runtime() {
    let threads = std::env::var("SEALED_REDIS_SESSION_THREADS")
        .ok()
        .and_then(|value| value.parse::<usize>().ok())
        .filter(|&threads| threads > 0)
        .unwrap_or(DEFAULT_WORKER_THREADS);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("sealed-redis-session")
        .enable_all()
        .build();
    if let Ok(runtime) = runtime {
        napi::bindgen_prelude::create_custom_tokio_runtime(runtime);
    }
}
