//! LLM providers behind one trait: OpenAI, Anthropic, any OpenAI-compatible endpoint and
//! the built-in retrieval responder.
