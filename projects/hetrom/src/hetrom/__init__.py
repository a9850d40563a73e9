"""HeTRoM: robust meta-learning over heterogeneous tasks."""
