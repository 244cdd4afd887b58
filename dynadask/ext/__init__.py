"""Extensions: methods from outside dynamo's core (ddhodge, …)."""
