package bus

import (
	"context"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// SubscribeAll subscribes sub to every pattern and returns their channels
// in the same order. Each Subscribe declares and binds on the broker, and
// waits out a reconnect whatever ctx says, so the whole wait is bounded by
// timeout; subscriptions made by then end with sub.Close or ctx.
func SubscribeAll(ctx context.Context, sub message.Subscriber, patterns []string, timeout time.Duration) ([]<-chan *message.Message, error) {
	type result struct {
		chans []<-chan *message.Message
		err   error
	}
	res := make(chan result, 1)
	go func() {
		var r result
		for _, p := range patterns {
			ch, err := sub.Subscribe(ctx, p)
			if err != nil {
				r.err = fmt.Errorf("cannot bind pattern %q: %w", p, err)
				break
			}
			r.chans = append(r.chans, ch)
		}
		res <- r
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case r := <-res:
		return r.chans, r.err
	case <-timer.C:
		return nil, fmt.Errorf("the broker did not bind the patterns within %s", timeout)
	}
}
