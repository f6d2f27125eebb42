"""orgtune: fine-tune small instruct LLMs on an organization's documents, prove they learned, ship them."""

__version__ = "0.1.0"
