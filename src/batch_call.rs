//! The arguments of one `onBatch` call, made straight from a batch of encoded outcomes.
//!
//! This runs on Node's main thread for every batch, so it makes no JS value it can do
//! without:
//! - the numbers are copied into one `Float64Array` kept from batch to batch (the
//!   [`Inbox`]), and their count is passed along. A new typed array over Rust's own memory
//!   (an external buffer) needs a finalizer, which Node makes through a `Buffer`, a weak
//!   handle and a prototype change: profiling found that at a sixth of the main thread's time
//!   on reads, and a new V8-owned buffer each batch still at a fifteenth;
//! - the texts of cut sessions are arguments of their own (`onBatch(numbers, count, text,
//!   undefined, ...texts)`), rather than elements set one by one into an array through
//!   Node-API. Only a batch of more than [`MAX_TEXT_ARGUMENTS`] (outcomes that piled up
//!   while Node's thread was busy) passes them as one array in place of `undefined`: every
//!   argument takes room on V8's stack.
//!
//! Strings are made as Latin-1 when they are ASCII (V8 copies them without decoding).

use std::ffi::{c_char, c_void};
use std::ptr;
use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::JsValuesTupleIntoVec;
use napi::sys;

use crate::batch_wire::EncodedOutcomes;

/// Most texts passed as arguments of their own (see the module documentation).
pub const MAX_TEXT_ARGUMENTS: usize = 1024;

/// Doubles the inbox holds at first; it grows to the largest batch.
const FIRST_CAPACITY: usize = 1024;

/// An inbox grown past this many doubles by a pile of outcomes is replaced by a small one
/// at the next small batch, so that one spike does not hold its memory for good.
const KEPT_CAPACITY: usize = 16 * FIRST_CAPACITY;

/// One batch of outcomes, as the arguments of `onBatch(numbers, count, text, all, ...texts)`.
pub struct BatchCall {
    /// The outcomes.
    pub outcomes: EncodedOutcomes,
    /// Where their numbers go.
    pub inbox: Arc<Inbox>,
}

impl JsValuesTupleIntoVec for BatchCall {
    fn into_vec(self, env: sys::napi_env) -> napi::Result<Vec<sys::napi_value>> {
        let EncodedOutcomes { numbers, text, texts } = self.outcomes;
        let apart = texts.len() <= MAX_TEXT_ARGUMENTS;
        let mut values = Vec::with_capacity(4 + if apart { texts.len() } else { 0 });

        values.push(self.inbox.fill(env, &numbers)?);
        values.push(double(env, numbers.len() as f64)?);
        values.push(string(env, &text)?);
        if apart {
            values.push(undefined(env)?);
            for text in &texts {
                values.push(string(env, text)?);
            }
        } else {
            values.push(array_of_strings(env, &texts)?);
        }
        Ok(values)
    }
}

/// The `Float64Array` that carries the outcome numbers to JS, made on first use, replaced
/// by a bigger one when a batch does not fit, and by a small one again after a spike (see
/// [`KEPT_CAPACITY`]). JS reads it only during `onBatch`.
#[derive(Default)]
pub struct Inbox {
    held: Mutex<Option<Held>>,
}

/// The inbox's array, held by a Node-API reference.
struct Held {
    env: sys::napi_env,
    reference: sys::napi_ref,
    capacity: usize,
}

// SAFETY: a `Held` is made, used and dropped only on Node's main thread: in `onBatch`'s
// argument making, and when the batch callback is finalized (Node runs thread-safe
// function finalizers on that thread). The mutex only satisfies the compiler.
unsafe impl Send for Held {}

impl Drop for Held {
    fn drop(&mut self) {
        // SAFETY: on Node's main thread (see above), with the environment that made it.
        unsafe { sys::napi_delete_reference(self.env, self.reference) };
    }
}

impl Inbox {
    /// The inbox's array holding `numbers` from its start.
    fn fill(&self, env: sys::napi_env, numbers: &[f64]) -> napi::Result<sys::napi_value> {
        let mut held = self.held.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let capacity = numbers.len().max(FIRST_CAPACITY).next_power_of_two();
        let unfit = |held: &Held| held.capacity < capacity || held.capacity > KEPT_CAPACITY;
        if held.as_ref().is_none_or(|held| unfit(held) && held.capacity != capacity) {
            let array = float64_array(env, capacity)?;
            let mut reference = ptr::null_mut();
            // SAFETY: `env` is the live environment of this callback, on its thread.
            check(unsafe { sys::napi_create_reference(env, array, 1, &mut reference) })?;
            *held = Some(Held { env, reference, capacity });
        }
        let Some(held) = held.as_ref() else {
            return Err(napi::Error::from_reason("no inbox"));
        };

        let mut array = ptr::null_mut();
        // SAFETY: the reference is strong, so the array is alive.
        check(unsafe { sys::napi_get_reference_value(env, held.reference, &mut array) })?;
        let data = typed_array_data(env, array)?;
        if !numbers.is_empty() {
            // SAFETY: `data` is the start of the array's `capacity` doubles (at least
            // `numbers.len()`), aligned by V8 for doubles; JS is not running meanwhile.
            unsafe { ptr::copy_nonoverlapping(numbers.as_ptr(), data, numbers.len()) };
        }
        Ok(array)
    }
}

/// A new `Float64Array` of `length` doubles, in memory that V8 owns.
fn float64_array(env: sys::napi_env, length: usize) -> napi::Result<sys::napi_value> {
    let mut data: *mut c_void = ptr::null_mut();
    let mut buffer = ptr::null_mut();
    let bytes = length * std::mem::size_of::<f64>();
    // SAFETY: `env` is the live environment of this callback, on its thread; the out
    // pointers point at locals.
    check(unsafe { sys::napi_create_arraybuffer(env, bytes, &mut data, &mut buffer) })?;

    let mut array = ptr::null_mut();
    let kind = sys::TypedarrayType::float64_array;
    // SAFETY: as above; `buffer` is the ArrayBuffer just made, of exactly this length.
    check(unsafe { sys::napi_create_typedarray(env, kind, length, buffer, 0, &mut array) })?;
    Ok(array)
}

/// Where the doubles of the `Float64Array` `array` start.
fn typed_array_data(env: sys::napi_env, array: sys::napi_value) -> napi::Result<*mut f64> {
    let (mut kind, mut length, mut data) = (0, 0, ptr::null_mut());
    let (mut buffer, mut offset) = (ptr::null_mut(), 0);
    // SAFETY: `env` is live and `array` a typed array value of this callback's scope.
    check(unsafe {
        sys::napi_get_typedarray_info(
            env,
            array,
            &mut kind,
            &mut length,
            &mut data,
            &mut buffer,
            &mut offset,
        )
    })?;
    Ok(data.cast::<f64>())
}

/// A JS array of `texts`, element by element.
fn array_of_strings(env: sys::napi_env, texts: &[String]) -> napi::Result<sys::napi_value> {
    let mut array = ptr::null_mut();
    // SAFETY: `env` is the live environment of this callback; the out pointer is a local.
    check(unsafe { sys::napi_create_array_with_length(env, texts.len(), &mut array) })?;
    for (index, text) in texts.iter().enumerate() {
        let element = string(env, text)?;
        let index = u32::try_from(index).map_err(|_| napi::Error::from_reason("too many"))?;
        // SAFETY: `array` and `element` are values of this callback's scope.
        check(unsafe { sys::napi_set_element(env, array, index, element) })?;
    }
    Ok(array)
}

fn undefined(env: sys::napi_env) -> napi::Result<sys::napi_value> {
    let mut value = ptr::null_mut();
    // SAFETY: `env` is the live environment of this callback; the out pointer is a local.
    check(unsafe { sys::napi_get_undefined(env, &mut value) })?;
    Ok(value)
}

fn double(env: sys::napi_env, value: f64) -> napi::Result<sys::napi_value> {
    let mut number = ptr::null_mut();
    // SAFETY: `env` is the live environment of this callback; the out pointer is a local.
    check(unsafe { sys::napi_create_double(env, value, &mut number) })?;
    Ok(number)
}

/// A JS string of `text`: Latin-1 when ASCII, else decoded from UTF-8.
fn string(env: sys::napi_env, text: &str) -> napi::Result<sys::napi_value> {
    let (start, length) = (text.as_ptr().cast::<c_char>(), text.len() as isize);
    let mut value = ptr::null_mut();
    // SAFETY: `env` is the live environment of this callback; `start` and `length` describe
    // `text`, which outlives the call (V8 copies it); the out pointer points at a local.
    let status = unsafe {
        if text.is_ascii() {
            sys::napi_create_string_latin1(env, start, length, &mut value)
        } else {
            sys::napi_create_string_utf8(env, start, length, &mut value)
        }
    };
    check(status)?;
    Ok(value)
}

fn check(status: sys::napi_status) -> napi::Result<()> {
    match status {
        sys::Status::napi_ok => Ok(()),
        failed => Err(napi::Error::new(napi::Status::from(failed), "making a batch's arguments")),
    }
}
