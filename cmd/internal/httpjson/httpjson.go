// Package httpjson writes the JSON answers of the HTTP gateway and the
// console, so that both answer alike: compact JSON without HTML escaping,
// as Python's json.dumps writes it, and errors as {"error": ...} with a
// message that says what the caller can do.
package httpjson

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/http"
)

// Write answers v as JSON with the given status.
func Write(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":"cannot encode the response; the server logged nothing more"}` + "\n")
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// Error answers {"error": msg, ...details}.
func Error(w http.ResponseWriter, status int, msg string, details map[string]any) {
	body := make(map[string]any, len(details)+1)
	maps.Copy(body, details)
	body["error"] = msg
	Write(w, status, body)
}
