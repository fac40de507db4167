package commands

import "github.com/33god/bloodbank-go/cqrs"

// Register adds the built-in commands that Python executes to p, answered
// by agent (nil means EchoAgent{}): agent.thread.prompt. LLMPrompt is not
// among them: llm.prompt is a fact in Python, answered by whichever service
// runs the model, and a second, echoed answer would be wrong (see its doc).
func Register(p *cqrs.Processor, agent Agent) error {
	return cqrs.Register(p, AgentThreadPrompt{Agent: agent})
}
