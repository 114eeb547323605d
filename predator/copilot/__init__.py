"""The copilot's core: prompts over retrieved declarations, generation with LoRA adapters, citations
and the grounding check. Plain Python (torch and transformers, no Ray); ``serve_apps.copilot`` wires it
into Serve deployments.
"""
