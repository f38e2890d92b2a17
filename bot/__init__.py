"""GradGuide: an employment-guidance assistant for college graduates."""

__version__ = "0.1.0"
