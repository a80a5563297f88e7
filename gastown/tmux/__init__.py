"""tmux: pure names and formats (``names``), the driver that runs every tmux command
(``driver``), and the one function that types into agents (``typing``)."""
