'use strict'

/**
 * Hands a session to the native store as the values of its shape, which the store writes
 * into the JSON of that shape (`src/json_join.rs`), instead of running `JSON.stringify`
 * on Node's thread.
 *
 * `JSON.stringify` of a 250-byte session is most of what a write costs the main thread.
 * Sessions of one application share a handful of shapes: the same keys, the same kinds of
 * values. For each shape this module compiles, once, a function that checks a session has
 * that shape and reads its values out of it: a few property loads and type checks. The
 * shape's JSON around the values (keys, punctuation, nulls, the members `JSON.stringify`
 * leaves out) goes to the native store once, as a template of literal pieces.
 *
 * The JSON written must be the very string `JSON.stringify(session)` makes, so a session is
 * only encoded when every value is one whose JSON is certain: a well-formed string, a
 * number, a boolean, null, a member left out (undefined, a function, a symbol), a plain Date
 * (see `isPlainDate`), an express-session `Cookie` (through its own `toJSON`), or any other
 * object without `toJSON`, which is handed over as `JSON.stringify` of it. The session and
 * plain objects directly in it are spelled out; anything else (a Session subclass, an
 * object with its own `toJSON`, a BigInt, more than a few dozen members or shapes) is
 * left to `JSON.stringify` whole. `__test__/session-encoder.test.js` compares the two.
 */

const { Cookie, Session } = require('express-session')
const { isPlainDate } = require('./session-json')
const { CAN_COMPILE } = require('./session-shape')

const COOKIE_TO_JSON = Cookie.prototype.toJSON
const OBJECT_PROTOTYPE = Object.prototype

/** Shapes per store; the native side keeps as many templates (`MAX_TEMPLATES`). */
const MAX_SHAPES = 64
/** Members of one spelled-out object. */
const MAX_MEMBERS = 32
/** Values of one shape. */
const MAX_SLOTS = 64
/** Shapes tried before working out a session's shape. */
const RECENT = 4

const NO_DEFINITIONS = Object.freeze([])

/** Encodes sessions of up to MAX_SHAPES shapes, compiling each shape once. */
class SessionEncoder {
  /** Strings of the last encoded session, in slot order. */
  texts = []
  /** Numbers of the last encoded session: one per slot, a string's being its length. */
  numbers = []
  #byKey = new Map()
  #recent = []
  #definitions = []

  /**
   * Encodes `session` into `texts` and `numbers` and returns its shape's number, or -1
   * when it is to be left to `JSON.stringify`. Throws what reading the session throws
   * (a getter, a `toJSON`), as `JSON.stringify` would.
   */
  encode(session) {
    for (let i = 0; i < this.#recent.length; i++) {
      if (this.#try(this.#recent[i], session)) return this.#used(i)
    }
    const shape = this.#shapeOf(session)
    if (shape === null || !this.#try(shape, session)) return -1
    this.#recent.unshift(shape)
    if (this.#recent.length > RECENT) this.#recent.pop()
    return shape.number
  }

  /** The shapes to define natively before the next use, taken: `{ number, letters, literals }`. */
  takeDefinitions() {
    // Almost every call finds none: keep the empty list rather than make a new one.
    if (this.#definitions.length === 0) return NO_DEFINITIONS
    const definitions = this.#definitions
    this.#definitions = []
    return definitions
  }

  /** Forgets every shape, so that each is defined again on its next use. */
  reset() {
    this.#byKey.clear()
    this.#recent = []
    this.#definitions = []
  }

  #try(shape, session) {
    // New arrays: emptying the old ones (`length = 0`) costs a call into the runtime.
    this.texts = []
    this.numbers = []
    return shape.encode(session, this.texts, this.numbers)
  }

  #used(index) {
    const shape = this.#recent[index]
    if (index > 0) {
      this.#recent.splice(index, 1)
      this.#recent.unshift(shape)
    }
    return shape.number
  }

  /** The shape of `session`, compiled and numbered on first sight; null if it has none. */
  #shapeOf(session) {
    const tree = describeSession(session)
    if (tree === null) return null
    const key = JSON.stringify(tree)
    const known = this.#byKey.get(key)
    if (known !== undefined) return known
    if (this.#byKey.size >= MAX_SHAPES) return null

    const template = templateOf(tree)
    if (template.letters.length > MAX_SLOTS) return null
    const shape = { number: this.#byKey.size, encode: compileEncoder(tree) }
    this.#byKey.set(key, shape)
    this.#definitions.push({ number: shape.number, ...template })
    return shape
  }
}

/**
 * The shape of a session: an object node `{ via, keys, children }` (`via` 'o' for an object
 * read as it is, 'c' for a Cookie read through its `toJSON`), whose children are object
 * nodes or one letter: s(tring), n(umber), b(oolean), z (null), u (left out), d(ate),
 * j (JSON.stringify of it). Null when the session is to be left to JSON.stringify.
 */
function describeSession(session) {
  return isSessionObject(session) ? describeObject(session, 'o', 1) : null
}

function describeObject(object, via, depth) {
  const keys = Object.keys(object)
  if (keys.length > MAX_MEMBERS) return null
  const children = []
  for (const key of keys) {
    const child = describeValue(object[key], key, depth)
    if (child === null) return null
    children.push(child)
  }
  return { via, keys, children }
}

function describeValue(value, key, depth) {
  switch (typeof value) {
    case 'string': return value.isWellFormed() ? 's' : null
    case 'number': return 'n'
    case 'boolean': return 'b'
    case 'undefined': case 'function': case 'symbol': return 'u'
    case 'object': return describeObjectValue(value, key, depth)
    default: return null
  }
}

function describeObjectValue(value, key, depth) {
  if (value === null) return 'z'
  if (isPlainDate(value)) return 'd'
  if (depth === 1 && isPlainCookie(value)) {
    const data = value.toJSON(key)
    return isPlainObject(data) ? describeObject(data, 'c', depth + 1) : null
  }
  if (typeof value.toJSON === 'function') return null
  if (depth === 1 && isPlainObject(value)) return describeObject(value, 'o', depth + 1)
  return 'j'
}

/** The top of a session: a plain object or a `Session`, with no `toJSON` of its own. */
function isSessionObject(value) {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false
  const prototype = Object.getPrototypeOf(value)
  const ordinary = prototype === OBJECT_PROTOTYPE || prototype === null ||
    prototype === Session.prototype
  return ordinary && typeof value.toJSON !== 'function'
}

/** An object `JSON.stringify` writes member by member: its prototype is Object's, or null. */
function isPlainObject(value) {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false
  const prototype = Object.getPrototypeOf(value)
  return prototype === OBJECT_PROTOTYPE || prototype === null
}

/** An express-session `Cookie` whose JSON is its own `toJSON`'s. */
function isPlainCookie(value) {
  return value instanceof Cookie && Object.getPrototypeOf(value) === Cookie.prototype &&
    value.toJSON === COOKIE_TO_JSON
}

/** An object whose JSON is `JSON.stringify` of it alone: no `toJSON` to call with a key. */
function isRawable(value) {
  return value !== null && typeof value === 'object' && typeof value.toJSON !== 'function'
}

function isLeftOut(value) {
  return value === undefined || typeof value === 'function' || typeof value === 'symbol'
}

/** A number's slot: a safe integer as itself, anything else as NaN and its JSON text. */
function pushNumber(value, texts, numbers) {
  if (Number.isSafeInteger(value)) {
    numbers.push(value)
    return
  }
  const json = Number.isFinite(value) ? String(value) : 'null'
  numbers.push(NaN, json.length)
  texts.push(json)
}

function pushRaw(value, texts, numbers) {
  const json = JSON.stringify(value)
  texts.push(json)
  numbers.push(json.length)
}

const HELPERS = {
  isSessionObject, isPlainObject, isPlainCookie, isPlainDate, isRawable, isLeftOut,
  pushNumber, pushRaw,
}

/** `encode(session, texts, numbers) -> boolean` for one shape, as straight-line code. */
function compileEncoder(tree) {
  if (!CAN_COMPILE) return () => false
  const state = { objects: 0, lines: ['if (!isSessionObject(o0)) return false'] }
  emitObject(tree, 'o0', state)
  const names = Object.keys(HELPERS)
  const body = `'use strict'\nreturn function encode(o0, T, N) {\n  let k, v\n` +
    `  ${state.lines.join('\n  ')}\n  return true\n}`
  const factory = new Function(...names, body) // eslint-disable-line no-new-func
  return factory(...names.map((name) => HELPERS[name]))
}

function emitObject(node, name, state) {
  const checks = node.keys.map((key, i) => `k[${i}] !== ${JSON.stringify(key)}`)
  state.lines.push(`k = Object.keys(${name})`,
    `if (k.length !== ${node.keys.length}${checks.map((c) => ` || ${c}`).join('')}) return false`)
  node.keys.forEach((key, i) => {
    state.lines.push(`v = ${name}[${JSON.stringify(key)}]`)
    emitValue(node.children[i], key, state)
  })
}

function emitValue(child, key, state) {
  const lines = state.lines
  if (typeof child === 'object') {
    const inner = `o${++state.objects}`
    if (child.via === 'c') {
      lines.push('if (!isPlainCookie(v)) return false',
        `const ${inner} = v.toJSON(${JSON.stringify(key)})`,
        `if (!isPlainObject(${inner})) return false`)
    } else {
      lines.push("if (!isPlainObject(v) || typeof v.toJSON === 'function') return false",
        `const ${inner} = v`)
    }
    emitObject(child, inner, state)
    return
  }
  lines.push(...LEAVES[child])
}

const LEAVES = {
  s: ["if (typeof v !== 'string' || !v.isWellFormed()) return false", 'T.push(v)',
    'N.push(v.length)'],
  n: ["if (typeof v !== 'number') return false", 'pushNumber(v, T, N)'],
  b: ["if (typeof v !== 'boolean') return false", 'N.push(v ? 1 : 0)'],
  z: ['if (v !== null) return false'],
  u: ['if (!isLeftOut(v)) return false'],
  d: ['if (!isPlainDate(v)) return false', 'N.push(v.getTime())'],
  j: ['if (!isRawable(v)) return false', 'pushRaw(v, T, N)'],
}

/**
 * The JSON of a shape around its values: `literals[0]`, value 0, `literals[1]`, ...,
 * and the letter of each value's kind (see `src/json_join.rs`).
 */
function templateOf(tree) {
  const letters = []
  const literals = []
  let piece = ''
  const object = (node) => {
    piece += '{'
    let first = true
    node.keys.forEach((key, i) => {
      const child = node.children[i]
      if (child === 'u') return
      piece += `${first ? '' : ','}${JSON.stringify(key)}:`
      first = false
      if (typeof child === 'object') object(child)
      else if (child === 'z') piece += 'null'
      else {
        letters.push(child)
        literals.push(piece)
        piece = ''
      }
    })
    piece += '}'
  }
  object(tree)
  literals.push(piece)
  return { letters: letters.join(''), literals }
}

module.exports = { SessionEncoder }
