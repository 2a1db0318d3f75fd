// nsqjs with unlimited attempts (maxAttempts 0, its default) against an
// nsqd with --max-attempts, driven by e2e/limits_test.go.
// Usage: node deadletter.js NSQD_TCP_ADDR TOPIC
// Consumes TOPIC on channel "js", requeueing every message at once, and
// TOPIC.js.dlq on channel "x"; prints one JSON line: the attempts the
// handler saw and the dead letters' bodies.
'use strict'
const nsq = require('nsqjs')

const [nsqdAddr, topic] = process.argv.slice(2)
const result = { attempts: [], dead: [], errors: [] }
const done = (code) => {
  console.log(JSON.stringify(result))
  process.exit(code)
}
setTimeout(() => { result.errors.push('timeout'); done(1) }, 20000)

const failing = new nsq.Reader(topic, 'js', {
  nsqdTCPAddresses: [nsqdAddr],
  maxAttempts: 0,
  requeueDelay: 0,
})
failing.on('error', (err) => result.errors.push('reader: ' + err.message))
failing.on('message', (msg) => {
  result.attempts.push(msg.attempts)
  msg.requeue(0, false)
})

const dlq = new nsq.Reader(topic + '.js.dlq', 'x', { nsqdTCPAddresses: [nsqdAddr] })
dlq.on('error', (err) => result.errors.push('dlq reader: ' + err.message))
dlq.on('message', (msg) => {
  result.dead.push(msg.body.toString())
  msg.finish()
  setTimeout(() => done(0), 500) // another attempt or dead letter would arrive meanwhile
})

failing.connect()
dlq.connect()
