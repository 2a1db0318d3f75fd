// nsqjs against our nsqd and nsqlookupd, driven by e2e/clients_test.go.
// Usage: node client.js NSQD_TCP_ADDR LOOKUPD_HTTP_ADDR TOPIC COUNT
// Publishes COUNT messages (MPUB of COUNT-2, one PUB, one DPUB of 200 ms),
// consumes them through lookupd discovery, requeues each message once on
// its first attempt, touches one, and prints one JSON line of what it saw.
'use strict'
const nsq = require('nsqjs')

const [nsqdAddr, lookupdAddr, topic, countArg] = process.argv.slice(2)
const count = Number(countArg)
const [host, port] = nsqdAddr.split(':')
const result = { published: 0, received: {}, attempts2: 0, touched: false, errors: [] }

const done = (code) => {
  console.log(JSON.stringify(result))
  process.exit(code)
}
setTimeout(() => { result.errors.push('timeout'); done(1) }, 30000)

const reader = new nsq.Reader(topic, 'nsqjs', {
  lookupdHTTPAddresses: [lookupdAddr],
  lookupdPollInterval: 1,
  maxInFlight: 10,
  requeueDelay: 0,
})
reader.on('error', (err) => result.errors.push('reader: ' + err.message))
reader.on('message', (msg) => {
  const body = msg.body.toString()
  if (msg.attempts === 1) {
    if (!result.touched) {
      msg.touch()
      result.touched = true
    }
    msg.requeue(0, false)
    return
  }
  result.attempts2++
  result.received[body] = (result.received[body] || 0) + 1
  msg.finish()
  if (Object.keys(result.received).length === count) {
    setTimeout(() => done(0), 300) // a duplicate would arrive meanwhile
  }
})

const writer = new nsq.Writer(host, Number(port))
writer.on('error', (err) => result.errors.push('writer: ' + err.message))
writer.on('ready', () => {
  const batch = []
  for (let i = 0; i < count - 2; i++) batch.push('mpub-' + i)
  writer.publish(topic, batch, (err) => {
    if (err) return result.errors.push('MPUB: ' + err.message)
    result.published += batch.length
    writer.publish(topic, 'pub-single', (err) => {
      if (err) return result.errors.push('PUB: ' + err.message)
      result.published++
      // nsqjs's deferPublish wants an array, even of one message.
      writer.deferPublish(topic, ['dpub-200ms'], 200, (err) => {
        if (err) return result.errors.push('DPUB: ' + err.message)
        result.published++
        reader.connect() // the topic exists now, so lookupd knows it
      })
    })
  })
})
writer.connect()
