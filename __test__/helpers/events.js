'use strict'

/** Waiting on events in tests, always with a deadline. */

/** Resolves with the first of `events` that `emitter` emits, or rejects after `ms`. */
function waitFor(emitter, events, ms = 5000) {
  return new Promise((resolve, reject) => {
    const handlers = {}
    const done = (fn) => {
      clearTimeout(timer)
      for (const [event, handler] of Object.entries(handlers)) emitter.off(event, handler)
      fn()
    }
    const timer = setTimeout(() => done(() =>
      reject(new Error(`none of ${events.join(', ')} within ${ms} ms`))), ms)
    for (const event of events) {
      handlers[event] = (arg) => done(() => resolve({ event, arg }))
      emitter.on(event, handlers[event])
    }
  })
}

module.exports = { waitFor }
