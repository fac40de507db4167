// Command third-party-domain registers a domain of its own (package
// billing: its payload type, schema and example) next to the built-in ones,
// runs a service that consumes it with validation, and publishes two
// billing.invoice.paid events: a valid one, which the handler gets typed,
// and an invalid one, as a buggy producer might send it, which validation
// rejects with the JSON path of each problem before the handler sees it.
//
// Without RABBIT_URL it runs on the embedded in-process transport; with
// RABBIT_URL on the real bus.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/lmittmann/tint"
	amqp091 "github.com/rabbitmq/amqp091-go"
	"golang.org/x/term"

	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/domains"
	"github.com/33god/bloodbank-go/domains/catalog"
	"github.com/33god/bloodbank-go/examples/third-party-domain/billing"
	"github.com/33god/bloodbank-go/middleware"
)

// serviceName names the service queue, bloodbank.events.v1.billing_ledger,
// which the demo deletes when it is done.
const serviceName = "billing_ledger"

func main() {
	// Readable lines on stderr, colored on a terminal.
	logger := slog.New(tint.NewTextHandler(os.Stderr, &tint.Options{NoColor: !term.IsTerminal(int(os.Stderr.Fd()))}))
	cfg, err := bus.LoadConfig(os.Environ(), ".env")
	if err == nil {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err = run(ctx, cfg, logger, os.Stdout)
		stop()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "third-party-domain:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg bus.Config, logger *slog.Logger, out io.Writer) error {
	// The built-in domains, then ours: one registry, the caller's own.
	reg, err := catalog.New()
	if err != nil {
		return err
	}
	if err := billing.Register(reg); err != nil {
		return err
	}
	et, err := reg.LookupKey(billing.RoutingKeyInvoicePaid)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "registered %s as %s (domain %s, %s)\n", et.RoutingKey(), et.Name(), et.Domain(), et.Kind())

	b, err := bus.Open(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer b.Close()

	// UnknownReject: this service is bound to billing events only, and
	// anything else arriving is a mistake worth parking.
	validation, err := middleware.NewValidation(middleware.ValidationConfig{Validator: reg, UnknownTypes: middleware.UnknownReject, Logger: logger})
	if err != nil {
		return err
	}
	svc, err := b.NewService(serviceName)
	if err != nil {
		return err
	}
	rejected := make(chan string, 1)
	// Outermost first: rejections are reported after validation made them.
	// The service then logs and acks them; a production service parks them
	// in a poison queue (reliability.Use) instead.
	svc.Use(reportRejections(rejected), validation.Middleware)

	paid := make(chan billing.InvoicePaid, 1)
	err = bus.Handle(svc, "record_payment", billing.RoutingKeyInvoicePaid,
		func(ctx context.Context, ev bus.Event[billing.InvoicePaid]) error {
			// A real ledger would upsert by invoice id here.
			paid <- ev.Payload
			return nil
		})
	if err != nil {
		return err
	}

	svcCtx, stopService := context.WithCancel(ctx)
	defer stopService()
	svcDone := make(chan error, 1)
	go func() { svcDone <- svc.Run(svcCtx) }()
	select {
	case <-svc.Running():
	case err := <-svcDone:
		return fmt.Errorf("service stopped before it ran: %w", err)
	}

	// A valid event, from a typed payload validated before publishing.
	invoice := billing.InvoicePaid{
		InvoiceID: uuid.MustParse("9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"),
		Amount:    49.9,
		Currency:  billing.EUR,
		PaidAt:    envelope.NewTime(time.Date(2026, 1, 29, 10, 0, 0, 0, time.UTC)),
		Note:      new("January subscription"),
	}
	if err := reg.ValidateValue(billing.RoutingKeyInvoicePaid, invoice); err != nil {
		return err
	}
	if err := publish(ctx, b, invoice); err != nil {
		return err
	}
	select {
	case p := <-paid:
		fmt.Fprintf(out, "handled invoice %s: %.2f %s paid at %s, note %q, tags %v\n", p.InvoiceID, p.Amount, p.Currency, p.PaidAt, *p.Note, p.Tags)
	case err := <-svcDone:
		return fmt.Errorf("service stopped: %w", err)
	case <-ctx.Done():
		return ctx.Err()
	}

	// An invalid event, as a producer that skips validation sends it: the
	// bus carries any JSON object; the consumer's validation refuses it.
	// ("49.90" as a string would pass: validation converts what Python's
	// Pydantic models convert, unless BB_STRICT_TYPES is set.)
	bad := json.RawMessage(`{"invoice_id":"INV-2026-001","amount":"about fifty","currency":"EURO","paid_at":"yesterday","tags":null}`)
	if err := publish(ctx, b, bad); err != nil {
		return err
	}
	select {
	case problems := <-rejected:
		fmt.Fprint(out, problems)
	case p := <-paid:
		return fmt.Errorf("the invalid invoice %v reached the handler", p)
	case err := <-svcDone:
		return fmt.Errorf("service stopped: %w", err)
	case <-ctx.Done():
		return ctx.Err()
	}

	stopService()
	if err := <-svcDone; err != nil {
		return err
	}
	return deleteQueue(ctx, b, svc.QueueName())
}

// deleteQueue deletes the demo's durable service queue on RabbitMQ, so
// that the demo leaves nothing bound to the exchange. The embedded broker
// goes away with the process.
func deleteQueue(ctx context.Context, b *bus.Bus, queue string) error {
	if b.Transport() != bus.TransportAMQP {
		return nil
	}
	return b.WithChannel(ctx, func(ch *amqp091.Channel) error {
		_, err := ch.QueueDelete(queue, false, false, false)
		return err
	})
}

// publish publishes a billing.invoice.paid payload with a fixed event id,
// derived from the payload, so that the output is stable.
func publish(ctx context.Context, b *bus.Bus, payload any) error {
	raw, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	env, err := envelope.New(billing.RoutingKeyInvoicePaid, json.RawMessage(raw),
		envelope.WithEventID(envelope.DeterministicIDFromKey(billing.RoutingKeyInvoicePaid, string(raw))),
		envelope.WithSource(envelope.Source{Host: envelope.Hostname(), Type: envelope.TriggerHook, App: "payments-webhook"}))
	if err != nil {
		return err
	}
	return b.Publish(ctx, env)
}

// reportRejections sends, for each message that failed permanently, its id
// and the problems validation found, one per line, each with its JSON path.
func reportRejections(rejected chan<- string) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			out, err := h(msg)
			var perm *envelope.PermanentError
			if errors.As(err, &perm) {
				report := fmt.Sprintf("rejected %s (%s):\n", msg.UUID, perm.Kind)
				var verr *domains.ValidationError
				if errors.As(err, &verr) {
					for _, p := range verr.Problems {
						report += "  " + p.String() + "\n"
					}
				} else {
					report += "  " + err.Error() + "\n"
				}
				select {
				case rejected <- report:
				default:
				}
			}
			return out, err
		}
	}
}
