/// (being written)
module Research.Core.Likelihood
