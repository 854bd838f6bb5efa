"""Actions: what a trigger or schedule runs. One small Protocol, three kinds (http, python,
update); actions never touch job state, they only do their work or raise."""
