package transport

import "errors"

// ErrUnroutable is returned by a publish whose message the broker confirmed
// but could not route to any queue: nobody was bound to its routing key, so
// the event went nowhere. Check it with errors.Is.
var ErrUnroutable = errors.New("no queue is bound to the routing key")

// ErrNotConfirmed is returned by a publish the broker refused (nack) or whose
// channel closed before the confirm arrived: the event may not be stored.
var ErrNotConfirmed = errors.New("broker did not confirm the publish")

// ErrClosed is returned by a publisher or subscriber used after Close.
var ErrClosed = errors.New("closed")
