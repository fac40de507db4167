package commands

import "github.com/33god/bloodbank-go/cqrs"

// Register adds to p the built-in commands Python executes (agent.thread.prompt),
// answered by agent (nil means EchoAgent{}). LLMPrompt is left out: a second,
// echoed answer to llm.prompt would be wrong (see its doc).
func Register(p *cqrs.Processor, agent Agent) error {
	return cqrs.Register(p, AgentThreadPrompt{Agent: agent})
}
