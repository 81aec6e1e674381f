"""Serve the Responses and Anthropic Messages APIs on engines that only speak Chat Completions.

    translation = responses.ResponsesTranslation(payload, requested, store)  # 400s here
    chat_body = translation.chat_request()          # what goes to /v1/chat/completions
    answer = translation.from_chat(chat_answer)     # a whole answer, in the client's API
    writer = translation.writer()                   # a stream: chat chunks in, API events out

Modules: `chat` (the parts both APIs share: a chat stream split into text, reasoning and
tool-call pieces), `responses`, `messages`, `relay` (the SSE relay the proxy drives),
`modes` (when to pass through and when to translate, per engine). A body the translator
cannot map is a 400 naming the field (`errors.unsupported`), never a 500.
"""
