//! umT5 tokenizer and encoder for Wan2.1 text conditioning. Not implemented yet: see the README's status table.
