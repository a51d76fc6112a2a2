"""The portal: the people in the process act through pages made from the services' APIs."""
