package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/domains/agent/thread"
)

// templates are the messages every path sends: an agent.thread.prompt
// command of about -size bytes whose envelope names one parent event
// (so that it has a correlation link to record), and the
// agent.thread.response a command processor answers it with.
type templates struct {
	source   envelope.Source
	payload  json.RawMessage // the prompt payload
	prompt   []byte          // a whole prompt envelope, as bus encodes it
	idOff    int             // offset of event_id's value in prompt
	parOff   int             // offset of correlation_ids[0] in prompt
	response []byte          // a whole response envelope of the same size
	respText string          // what the echo command answers
}

func newTemplates(size int) (*templates, error) {
	t := &templates{source: envelope.Source{Host: "bench-host", Type: envelope.TriggerManual, App: "bbbench"}}
	model, project := "claude-sonnet-4", "bloodbank"
	base := "Analyze this codebase and report what limits its throughput."
	for n := 0; ; n++ {
		text := base + strings.Repeat(" Explain the module layout, the codec and the retry policy.", n)
		p := thread.Prompt{Provider: "anthropic", Model: &model, Prompt: text, Project: &project, Tags: []string{"bench"}}
		raw, err := json.Marshal(p)
		if err != nil {
			return nil, err
		}
		env, err := envelope.New(thread.RoutingKeyPrompt, json.RawMessage(raw), envelope.WithSource(t.source),
			envelope.WithCorrelationIDs(uuid.New()))
		if err != nil {
			return nil, err
		}
		body, err := env.MarshalJSON()
		if err != nil {
			return nil, err
		}
		if len(body) < size && n < 1000 {
			continue
		}
		t.payload, t.prompt, t.respText = raw, body, "echo: "+text
		t.idOff = bytes.Index(body, []byte(env.EventID.String()))
		t.parOff = bytes.Index(body, []byte(env.CorrelationIDs[0].String()))
		if t.idOff < 0 || t.parOff < 0 {
			return nil, fmt.Errorf("cannot find the ids in the template envelope")
		}
		break
	}
	resp, err := t.responseEnvelope(uuid.New())
	if err != nil {
		return nil, err
	}
	if t.response, err = resp.MarshalJSON(); err != nil {
		return nil, err
	}
	return t, nil
}

// promptBody is the template prompt with a new event id and parent, for
// prefilling queues: every message is a distinct event, as deduplication
// must see them.
func (t *templates) promptBody() (body []byte, id uuid.UUID) {
	body, id, _ = t.promptBodyOf()
	return body, id
}

// promptBodyOf is promptBody that also returns the prompt's parent, in no
// link and so the root of its chain: the key the command processor's
// cost totals and descendant count are kept under.
func (t *templates) promptBodyOf() (body []byte, id, parent uuid.UUID) {
	body = bytes.Clone(t.prompt)
	id, parent = uuid.New(), uuid.New()
	putUUID(body[t.idOff:], id)
	putUUID(body[t.parOff:], parent)
	return body, id, parent
}

// promptEnvelope is a new prompt envelope, built as a producer builds one.
func (t *templates) promptEnvelope() (envelope.Envelope, error) {
	return envelope.New(thread.RoutingKeyPrompt, t.payload, envelope.WithSource(t.source), envelope.WithCorrelationIDs(uuid.New()))
}

// responseEnvelope is the echo command's answer to a prompt.
func (t *templates) responseEnvelope(prompt uuid.UUID) (envelope.Envelope, error) {
	model := "claude-sonnet-4"
	id := prompt.String()
	//lint:ignore SA1019 Python responses carry prompt_id, so Go ones do too
	return envelope.New(thread.RoutingKeyResponse, thread.Response{Provider: "anthropic", PromptID: &id, Response: t.respText, Model: &model},
		envelope.WithSource(t.source))
}

func putUUID(dst []byte, id uuid.UUID) {
	var buf [36]byte
	hex := "0123456789abcdef"
	j := 0
	for i, b := range id {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			buf[j] = '-'
			j++
		}
		buf[j], buf[j+1] = hex[b>>4], hex[b&0x0f]
		j += 2
	}
	copy(dst, buf[:])
}
