"""FocalStackNet: learned depth from focus (network, loss, data, training, evaluation)."""
