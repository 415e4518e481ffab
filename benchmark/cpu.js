'use strict'

/**
 * CPU time of this process: the whole process (`process.cpuUsage`), the main JS thread alone
 * (`/proc/thread-self/schedstat`, ns on CPU, read from the main thread), and every thread
 * grouped as main / tokio (the addon's runtime) / other (V8 and libuv helpers).
 */

const fs = require('node:fs')
const { execFileSync } = require('node:child_process')

const SCHEDSTAT = '/proc/thread-self/schedstat'
const hasSchedstat = readable(SCHEDSTAT)
const NS_PER_TICK = 1e9 / clockTicks()

function readable(file) {
  try {
    fs.readFileSync(file, 'utf8')
    return true
  } catch {
    return false
  }
}

function clockTicks() {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100
  } catch {
    return 100
  }
}

/** ns on CPU of thread `tid` of this process: schedstat when available, else stat ticks. */
function threadNs(tid) {
  const dir = `/proc/self/task/${tid}`
  if (hasSchedstat) return Number(fs.readFileSync(`${dir}/schedstat`, 'utf8').split(' ')[0])
  const fields = fs.readFileSync(`${dir}/stat`, 'utf8').split(') ')[1].split(' ')
  return (Number(fields[11]) + Number(fields[12])) * NS_PER_TICK
}

/** ns on CPU of the calling thread, which is the main thread when called from JS. */
function mainThreadNs() {
  if (hasSchedstat) return Number(fs.readFileSync(SCHEDSTAT, 'utf8').split(' ')[0])
  return threadNs(process.pid)
}

/** ns on CPU per thread group; threads that ended since the last look are not counted. */
/** The addon's Tokio workers are named `sealed-redis-session` (the kernel keeps 15 chars). */
function isAddonThread(tid) {
  const name = fs.readFileSync(`/proc/self/task/${tid}/comm`, 'utf8')
  return name.startsWith('sealed-redis-se') || name.startsWith('tokio')
}

function threadGroupsNs() {
  const groups = { main: 0, tokio: 0, other: 0 }
  for (const tid of fs.readdirSync('/proc/self/task')) {
    try {
      const ns = threadNs(tid)
      if (Number(tid) === process.pid) groups.main += ns
      else if (isAddonThread(tid)) groups.tokio += ns
      else groups.other += ns
    } catch {
      // the thread ended between readdir and read
    }
  }
  return groups
}

/** A snapshot to pass to `cpuSince`. */
function cpuSnapshot() {
  return { process: process.cpuUsage(), main: mainThreadNs(), groups: threadGroupsNs() }
}

/** µs on CPU since `start`: `{ process, main, groups: { main, tokio, other } }`. */
function cpuSince(start) {
  const now = cpuSnapshot()
  const used = process.cpuUsage(start.process)
  const groups = {}
  for (const name of Object.keys(now.groups)) {
    groups[name] = Math.max(0, now.groups[name] - start.groups[name]) / 1000
  }
  return { process: used.user + used.system, main: (now.main - start.main) / 1000, groups }
}

module.exports = { cpuSnapshot, cpuSince, mainThreadNs, hasSchedstat }
