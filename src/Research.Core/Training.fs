/// (being written)
module Research.Core.Training
