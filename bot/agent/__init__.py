"""The answering agent: conversation state in, structured reply out; knows no channel."""
