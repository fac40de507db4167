package asyncapi

import "encoding/json"

// The types below are the subset of AsyncAPI 3.0.0 the generator writes, in
// the specification's member order so that the document reads top-down.

type document struct {
	AsyncAPI           string               `json:"asyncapi"`
	Info               info                 `json:"info"`
	DefaultContentType string               `json:"defaultContentType"`
	Servers            map[string]server    `json:"servers"`
	Channels           map[string]channel   `json:"channels"`
	Operations         map[string]operation `json:"operations"`
	Components         components           `json:"components"`
}

type info struct {
	Title       string `json:"title"`
	Version     string `json:"version"`
	Description string `json:"description,omitempty"`
}

type server struct {
	Host            string `json:"host"`
	Protocol        string `json:"protocol"`
	ProtocolVersion string `json:"protocolVersion"`
	Pathname        string `json:"pathname,omitempty"`
	Description     string `json:"description,omitempty"`
}

type reference struct {
	Ref string `json:"$ref"`
}

type tag struct {
	Name string `json:"name"`
}

type channel struct {
	Address     string               `json:"address"`
	Title       string               `json:"title,omitempty"`
	Description string               `json:"description,omitempty"`
	Messages    map[string]reference `json:"messages"`
	Parameters  map[string]parameter `json:"parameters,omitempty"`
	Tags        []tag                `json:"tags,omitempty"`
	Bindings    channelBindings      `json:"bindings"`
}

type parameter struct {
	Description string   `json:"description,omitempty"`
	Enum        []string `json:"enum,omitempty"`
	Location    string   `json:"location"`
}

type channelBindings struct {
	AMQP amqpChannel `json:"amqp"`
}

type amqpChannel struct {
	Is             string       `json:"is"`
	Exchange       amqpExchange `json:"exchange"`
	BindingVersion string       `json:"bindingVersion"`
}

type amqpExchange struct {
	Name       string `json:"name"`
	Type       string `json:"type"`
	Durable    bool   `json:"durable"`
	AutoDelete bool   `json:"autoDelete"`
	VHost      string `json:"vhost"`
}

type operation struct {
	Action      string             `json:"action"`
	Channel     reference          `json:"channel"`
	Title       string             `json:"title"`
	Summary     string             `json:"summary,omitempty"`
	Description string             `json:"description,omitempty"`
	Messages    []reference        `json:"messages"`
	Reply       *reply             `json:"reply,omitempty"`
	Tags        []tag              `json:"tags,omitempty"`
	Bindings    *operationBindings `json:"bindings,omitempty"`
	Kind        string             `json:"x-bloodbank-kind"`
	Result      string             `json:"x-bloodbank-result,omitempty"`
	Domain      string             `json:"x-bloodbank-domain"`
}

type reply struct {
	Channel  reference   `json:"channel"`
	Messages []reference `json:"messages"`
}

type operationBindings struct {
	AMQP amqpOperation `json:"amqp"`
}

type amqpOperation struct {
	DeliveryMode   int    `json:"deliveryMode,omitempty"`
	Ack            bool   `json:"ack,omitempty"`
	BindingVersion string `json:"bindingVersion"`
}

type components struct {
	Schemas  map[string]json.RawMessage `json:"schemas"`
	Messages map[string]message         `json:"messages"`
}

type message struct {
	Name        string           `json:"name"`
	Title       string           `json:"title"`
	Summary     string           `json:"summary,omitempty"`
	ContentType string           `json:"contentType"`
	Payload     map[string]any   `json:"payload"`
	Examples    []messageExample `json:"examples"`
	Bindings    messageBindings  `json:"bindings"`
	Tags        []tag            `json:"tags,omitempty"`
	Kind        string           `json:"x-bloodbank-kind"`
	Result      string           `json:"x-bloodbank-result,omitempty"`
	Domain      string           `json:"x-bloodbank-domain"`
}

type messageExample struct {
	Name    string          `json:"name"`
	Summary string          `json:"summary,omitempty"`
	Payload json.RawMessage `json:"payload"`
}

type messageBindings struct {
	AMQP amqpMessage `json:"amqp"`
}

type amqpMessage struct {
	ContentEncoding string `json:"contentEncoding"`
	BindingVersion  string `json:"bindingVersion"`
}
