"""The Gradio user interface: one module per tab. The only package that imports gradio."""
