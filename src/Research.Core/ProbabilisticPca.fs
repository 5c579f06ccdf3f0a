/// (being written)
module Research.Core.ProbabilisticPca
