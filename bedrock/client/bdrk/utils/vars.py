"""Constants notebooks written for Basis AI's client read, such as the client's logger name."""


class Constants:
    MAIN_LOG = "bdrk"
