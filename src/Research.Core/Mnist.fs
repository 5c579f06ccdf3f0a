/// (being written)
module Research.Core.Mnist
