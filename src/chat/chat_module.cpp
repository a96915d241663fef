// Module chat.
