"""Extensions: methods from outside dynamo's core (ddhodge, …)."""

from .hodge import ddhodge as ddhodge
