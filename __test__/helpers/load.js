'use strict'

/** Background load for failover tests: loops calling the store until stopped. */

/**
 * Starts `loops` loops, each running `step(loop, i)` again and again; `stop()` ends them and
 * resolves to how many steps succeeded and failed.
 */
function startLoad(loops, step) {
  let running = true
  const counts = { ok: 0, failed: 0 }
  const loop = async (n) => {
    for (let i = 0; running; i++) {
      try {
        await step(n, i)
        counts.ok++
      } catch {
        counts.failed++
      }
    }
  }
  const looping = Array.from({ length: loops }, (_, n) => loop(n))
  return {
    async stop() {
      running = false
      await Promise.all(looping)
      return counts
    },
  }
}

module.exports = { startLoad }
