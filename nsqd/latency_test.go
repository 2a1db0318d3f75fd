package nsqd

import (
	"testing"
	"time"
)

func TestE2ELatencyPercentiles(t *testing.T) {
	o := testOptions(t)
	o.E2EProcessingLatencyPercentiles = []float64{1.0, 0.99, 0.5}
	n := startNSQD(t, o)
	topic, _ := n.GetTopic("lat")
	empty := n.Stats("lat", "", false).Topics[0]
	if empty.E2eProcessingLatency.Percentiles != nil {
		t.Errorf("topic without channels: percentiles = %v, want null", empty.E2eProcessingLatency.Percentiles)
	}
	c := dialRaw(t, n)
	c.send("SUB lat ch")
	c.expect(0, "OK")
	c.send("RDY 10")
	for range 5 {
		topic.Publish([]byte("x"), 0)
	}
	for range 5 {
		_, data := c.readFrame()
		m, _ := decodeMessage(data)
		c.send("FIN " + string(m.ID[:]))
	}
	eventually(t, 5*time.Second, func() bool {
		return n.Stats("lat", "ch", false).Topics[0].Channels[0].E2eProcessingLatency.Count == 5
	}, "5 latency samples")
	st := n.Stats("lat", "", false).Topics[0]
	for _, p := range []Percentiles{st.E2eProcessingLatency, st.Channels[0].E2eProcessingLatency} {
		if p.Count != 5 || len(p.Percentiles) != 3 || p.Percentiles[0].Quantile != 1.0 || p.Percentiles[2].Quantile != 0.5 {
			t.Fatalf("percentiles = %+v", p)
		}
		for _, q := range p.Percentiles {
			if q.Value <= 0 || q.Value > float64(5*time.Second) {
				t.Errorf("quantile %v = %v ns, want a positive latency", q.Quantile, q.Value)
			}
		}
	}
}

// Concurrent stats readers and FINs must not share perks' internal slices.
func TestLatencyWindowConcurrentReaders(t *testing.T) {
	o := testOptions(t)
	o.E2EProcessingLatencyPercentiles = []float64{0.99, 0.5}
	n := &NSQD{opts: o}
	w := n.newLatencyWindow()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 2000 {
			w.record(time.Now(), int64(i))
		}
	}()
	for range 4 {
		go func() {
			for {
				select {
				case <-done:
					return
				default:
					latencyPercentiles(w.quantiles, w.samples())
				}
			}
		}()
	}
	<-done
	if p := latencyPercentiles(w.quantiles, w.samples()); p.Count != 2000 {
		t.Errorf("count = %d, want 2000", p.Count)
	}
}
