// Command command-processor is the Bloodbank service people deploy: it
// consumes its service queue and, until the commands package lands, logs
// every event it receives (pattern "#"), which makes it the bus's audit
// log. Without RABBIT_URL it runs on the embedded in-process transport.
//
// It serves GET /healthz and GET /readyz on HTTP_HOST:HTTP_PORT and stops
// on SIGINT or SIGTERM after draining in-flight messages.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/33god/bloodbank-go/bus"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "command-processor:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := bus.LoadConfig(os.Environ(), ".env")
	if err != nil {
		return err
	}
	if os.Getenv("SERVICE_NAME") == "" {
		cfg.ServiceName = "command_processor"
	}
	logger, err := bus.NewLogger(os.Stderr, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	b, err := bus.Open(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer b.Close()
	logger.Info("command-processor starting", slog.String("transport", b.Transport()), slog.Any("settings", cfg))
	if b.Transport() == bus.TransportEmbedded {
		logger.Warn("transport=embedded: no RABBIT_URL is set, so events live in this process only; set RABBIT_URL to join the bus")
	}

	svc, err := b.NewService(cfg.ServiceName)
	if err != nil {
		return err
	}
	if err := svc.HandleMessage("audit_log", "#", func(msg *message.Message) error {
		logEvent(logger, msg)
		return nil
	}); err != nil {
		return err
	}

	srv := &http.Server{
		Addr:              net.JoinHostPort(cfg.HTTPHost, strconv.Itoa(cfg.HTTPPort)),
		Handler:           healthHandler(cfg.ServiceName, b),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
	}
	httpErr := make(chan error, 1)
	go func() {
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			httpErr <- err
			stop()
		}
	}()
	logger.Info("http listening", slog.String("addr", srv.Addr))

	runErr := svc.Run(ctx)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	select {
	case err := <-httpErr:
		return fmt.Errorf("http server: %w", err)
	default:
	}
	return runErr
}

func logEvent(logger *slog.Logger, msg *message.Message) {
	if reason, bad := bus.Malformed(msg); bad {
		logger.Warn("malformed message", slog.String("id", msg.UUID), slog.String("reason", reason),
			slog.String("routing_key", msg.Metadata.Get(bus.MetaRoutingKey)))
		return
	}
	logger.Info("event",
		slog.String("event_type", bus.EventType(msg)),
		slog.String("event_id", msg.UUID),
		slog.String("source_app", msg.Metadata.Get(bus.MetaSourceApp)),
		slog.String("correlation_ids", msg.Metadata.Get(bus.MetaCorrelationIDs)),
		slog.String("payload", string(msg.Payload)))
}

func healthHandler(service string, b *bus.Bus) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"ok": true, "service": service})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := b.Ready(); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ok": false, "service": service, "error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"ok": true, "service": service, "transport": b.Transport()})
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
