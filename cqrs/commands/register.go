package commands

import (
	"errors"

	"github.com/33god/bloodbank-go/cqrs"
)

// Register adds every built-in command to p, each answered by agent (nil
// means EchoAgent{}): agent.thread.prompt and llm.prompt.
func Register(p *cqrs.Processor, agent Agent) error {
	return errors.Join(
		cqrs.Register(p, AgentThreadPrompt{Agent: agent}),
		cqrs.Register(p, LLMPrompt{Agent: agent}),
	)
}
