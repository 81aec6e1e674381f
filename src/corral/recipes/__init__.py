"""Recipes: what to run for a model on a kind of hardware, as YAML data with a schema.

A recipe knows the engine image or binary, the exact arguments and environment, container
options, the model's capabilities on that engine, the known issues of that combination
(and what the recipe does about each), and reference figures with their source. Built-in
recipes live in `builtin/`; users add their own in the folder named by `recipes_dir` in
corral.yaml. Recipes never launch anything; `render` turns one into an exact command.
"""
