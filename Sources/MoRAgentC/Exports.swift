import MoRAgent
