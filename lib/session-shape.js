'use strict'

/**
 * Builds the sessions read from Redis out of the shape and values the native store hands
 * over (`src/json_split.rs`), instead of running `JSON.parse` on Node's thread.
 *
 * `JSON.parse` of a 250-byte session is most of what a read costs the main thread. The
 * native store reads the JSON on its own thread and hands over its shape once (which keys,
 * which kinds of values) and, for each session, its values. Here each shape becomes a
 * function compiled once, an object literal whose values are read from the slots: V8 builds
 * such a literal in a fraction of the parse. The object is the one `JSON.parse` would build,
 * key order and all; `__test__/session-shape.test.js` compares the two on random JSON.
 *
 * Shapes (see `src/json_split.rs`): an object is `["o", key, node, key, node, ...]`; a value
 * is `"s"` (string), `"n"` (number), `"b"` (boolean), `"z"` (null), or `"j"` (JSON text for
 * `JSON.parse`). A string's slot is its length in the session's own text, where the strings
 * follow each other; so a string built here holds on to that session's text only.
 */

/** `JSON.parse` as this module was loaded, for the raw pieces. */
const parse = JSON.parse

/** Whether `new Function` is allowed (Node's --disallow-code-generation-from-strings). */
const CAN_COMPILE = (() => {
  try {
    return new Function('return true')() // eslint-disable-line no-new-func
  } catch {
    return false
  }
})()

/**
 * The builder of one shape: `{ slots, build(text, numbers, at) }`, `at` being the index of
 * its first slot in `numbers`. A shape is compiled; one that cannot be (no code generation
 * allowed, or a key compiled code would misread) is interpreted, which gives the same object.
 */
function shapeBuilder(descriptor) {
  const shape = parse(descriptor)
  const slots = countSlots(shape)
  const build = CAN_COMPILE && compilable(shape) ? compile(shape) : interpreter(shape)
  return { slots, build }
}

function countSlots(node) {
  if (Array.isArray(node)) {
    let slots = 0
    for (let i = 2; i < node.length; i += 2) slots += countSlots(node[i])
    return slots
  }
  if (!KINDS.has(node)) throw new Error(`unknown shape node ${JSON.stringify(node)}`)
  return node === 'z' ? 0 : 1
}

const KINDS = new Set(['s', 'n', 'b', 'z', 'j'])

/** Whether every key can be an object literal's key as it is: `__proto__` cannot. */
function compilable(node) {
  if (!Array.isArray(node)) return true
  for (let i = 1; i < node.length; i += 2) {
    if (typeof node[i] !== 'string' || node[i] === '__proto__') return false
    if (!compilable(node[i + 1])) return false
  }
  return true
}

/** One object literal for the whole shape; `p` walks the text as the values are read. */
function compile(shape) {
  const state = { slot: 0 }
  const body = `'use strict'\nreturn function build(t, n, a) {\n  let p = 0\n` +
    `  return ${expression(shape, state)}\n}`
  return new Function('parse', body)(parse) // eslint-disable-line no-new-func
}

function expression(node, state) {
  if (Array.isArray(node)) {
    const members = []
    for (let i = 1; i < node.length; i += 2) {
      members.push(`${JSON.stringify(node[i])}: ${expression(node[i + 1], state)}`)
    }
    return `{ ${members.join(', ')} }`
  }
  if (node === 'z') return 'null'
  const slot = `n[a + ${state.slot++}]`
  if (node === 'n') return slot
  if (node === 'b') return `${slot} === 1`
  if (node === 's') return `t.slice(p, p += ${slot})`
  return `parse(t.slice(p, p += ${slot}))`
}

/** A builder that never compiles, for the tests to compare with the compiled one. */
function interpretedBuilder(descriptor) {
  const shape = parse(descriptor)
  return { slots: countSlots(shape), build: interpreter(shape) }
}

/** The same objects without compiled code: the shape is walked for every session. */
function interpreter(shape) {
  return (text, numbers, at) => walk(shape, { text, numbers, at, position: 0 })
}

function walk(node, cursor) {
  if (Array.isArray(node)) {
    const object = {}
    for (let i = 1; i < node.length; i += 2) {
      // As JSON.parse defines a property: even `__proto__` is an own key, not the prototype.
      Object.defineProperty(object, node[i], {
        value: walk(node[i + 1], cursor), writable: true, enumerable: true, configurable: true,
      })
    }
    return object
  }
  if (node === 'z') return null
  const slot = cursor.numbers[cursor.at++]
  if (node === 'n') return slot
  if (node === 'b') return slot === 1
  const piece = cursor.text.slice(cursor.position, cursor.position + slot)
  cursor.position += slot
  return node === 's' ? piece : parse(piece)
}

module.exports = { shapeBuilder, interpretedBuilder, CAN_COMPILE }
